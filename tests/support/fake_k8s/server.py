"""`FakeKubernetes`: the fake API server, its lifecycle and its test-control methods."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from otm.devtools._serving import AppServer

from . import control_http, podstatus
from .backend import PodBackend, SimulatedPodBackend
from .gc import GarbageCollector
from .handlers import API_STATE, ApiState, Fault, RecordedRequest, add_api_routes, api_middleware
from .kubelet import Kubelet, KubeletConfig
from .podlogs import PodLogs
from .rbac import MASTERS, Authorizer, RbacPolicy, ServedRequest
from .resources import NAMESPACES, NODES, PODS, resource_of
from .store import Store

JSON = dict[str, Any]


class FakeKubernetes(AppServer):
    """An in-memory Kubernetes API server over real HTTP on 127.0.0.1.

    Use as `async with FakeKubernetes() as fake:`, or `await start()` / `await stop()`.
    Control methods (compact, drop_watches, inject_fault, fail_pod, ...) are plain Python
    methods for in-process tests; the same are served under `/_fake/...` (see
    control_http.py) for tests that drive the server from another process.
    """

    def __init__(
        self,
        *,
        kubelet: KubeletConfig | bool = True,
        pod_backend: PodBackend | None = None,
        token: str | None = None,
        namespaces: tuple[str, ...] = ("default", "kube-system"),
        bookmark_interval: float = 1.0,
        history_limit: int = 10_000,
        port: int = 0,
        rbac: RbacPolicy | None = None,
        enforce_rbac: bool = True,
        objects: Iterable[JSON] = (),
    ) -> None:
        """
        kubelet: a KubeletConfig, True for the default one, False for no scheduler and no
            kubelet at all (pods stay unbound and Pending until a test changes them).
        pod_backend: what the kubelet runs per pod (backend.py); default: no process, Ready
            after `KubeletConfig.start_delay`.
        token: the bearer token clients must send (one is generated when None).
        bookmark_interval: seconds between BOOKMARK events on watches that allow them
            (a real apiserver uses ~60 s; short here so tests see them).
        history_limit: how many changes stay replayable before older RVs get 410 Expired.
        rbac: Roles/ClusterRoles and bindings that authorize the users of `add_user`
            tokens (rbac.py); the admin `token` is in system:masters and always allowed.
            Without a policy every authenticated request is allowed.
        enforce_rbac: False: no 403s, only `served` records who asked for what.
        objects: manifests (apiVersion, kind, metadata.namespace) created at start, after
            the namespaces: what the cluster's operator installed (RuntimeClasses,
            PriorityClasses, ServiceAccounts, ...) that pods reference.
        """
        self.token = token or secrets.token_urlsafe(16)
        self.store = Store(history_limit=history_limit)
        self.logs = PodLogs()
        config = KubeletConfig() if kubelet is True else kubelet or None
        backend = pod_backend or SimulatedPodBackend(config.start_delay if config else 0.0)
        self.kubelet = Kubelet(self.store, self.logs, backend, config) if config else None
        self.garbage_collector = GarbageCollector(self.store)
        self.authorizer = Authorizer(rbac, {self.token: MASTERS}, enforce=enforce_rbac)
        self._state = ApiState(self.store, self.logs, self.authorizer, bookmark_interval)
        super().__init__(host="127.0.0.1", port=port)
        for name in namespaces:
            self.store.create(NAMESPACES, None, {"metadata": {"name": name}})
        for manifest in objects:
            self.store.create(
                resource_of(manifest), (manifest.get("metadata") or {}).get("namespace"), manifest
            )

    # Lifecycle -----------------------------------------------------------------------------

    shutdown_timeout_s = 5.0

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[api_middleware], client_max_size=8 * 1024 * 1024)
        app[API_STATE] = self._state
        app.on_shutdown.append(self._end_streams)
        app.cleanup_ctx.append(self._kubelet_running)
        control_http.add_control_routes(app, self)
        add_api_routes(app)
        return app

    async def _end_streams(self, app: web.Application) -> None:
        # Watches and log follows would otherwise hold the server's shutdown open.
        self.store.drop_subscriptions()
        self.logs.close_all()

    async def _kubelet_running(self, app: web.Application) -> Any:
        await self.garbage_collector.start()
        if self.kubelet is not None:
            await self.kubelet.start()
        yield
        if self.kubelet is not None:
            await self.kubelet.stop()
        await self.garbage_collector.stop()
        self.store.close()

    @property
    def url(self) -> str:
        return self.base_url

    def add_user(self, user: str) -> str:
        """A bearer token authenticating as ``user`` (e.g. rbac.service_account_user(...))."""
        token = secrets.token_urlsafe(16)
        self.authorizer.users[token] = user
        return token

    def kubeconfig(self, namespace: str = "default", *, token: str | None = None) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }

    def write_kubeconfig(
        self, path: Path, namespace: str = "default", *, user: str | None = None
    ) -> Path:
        """A kubeconfig for the admin, or (``user``) for a new token of that user."""
        token = self.add_user(user) if user is not None else None
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace, token=token)))
        path.chmod(0o600)
        return path

    # Control: API server -------------------------------------------------------------------

    def compact(self) -> int:
        """Drop the change history: watching from any earlier RV now gets 410 Expired."""
        return self.store.compact()

    def drop_watches(self) -> int:
        """End every open watch stream, as an apiserver restart would."""
        return self.store.drop_subscriptions()

    def inject_fault(
        self,
        status: int | None = 500,
        *,
        count: int = 1,
        path_contains: str | None = None,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `count` matching API requests with an error Status `status`
        (429 carries Retry-After), after holding them `delay` seconds; `status=None` with a
        delay makes a slow apiserver instead of a failing one."""
        self._state.faults.append(Fault(status, count, path_contains, method, delay))

    @property
    def requests(self) -> list[RecordedRequest]:
        """The API requests received (newest last, the last 5000)."""
        return list(self._state.requests)

    def clear_requests(self) -> None:
        self._state.requests.clear()

    def record_served(self, on: bool = True) -> None:
        """Start (or stop) recording the requests served, with user and RBAC attributes."""
        self._state.record_served = on

    @property
    def served(self) -> list[ServedRequest]:
        return list(self._state.served)

    # Control: pods (need the kubelet) ------------------------------------------------------

    def _kubelet(self) -> Kubelet:
        if self.kubelet is None:
            raise RuntimeError("this FakeKubernetes runs without a kubelet")
        return self.kubelet

    async def fail_pod(
        self,
        namespace: str,
        name: str,
        *,
        exit_code: int = 1,
        reason: str = "Error",
        message: str | None = None,
    ) -> JSON:
        """The pod's containers die: phase Failed, containers terminated, workload stopped."""
        await self._kubelet().fail(namespace, name, exit_code, reason, message)
        return self.store.get(PODS, namespace, name)

    async def sandbox_changed(
        self, namespace: str, name: str, *, new_ip: str | None = None
    ) -> JSON:
        """IP drift (Kata SandboxChanged): Ready=False, workload restarted, new podIP.

        The new IP is `new_ip`, else the backend's, else a fresh kubelet address; a backend
        that always answers 127.0.0.1 shows the drift as a changed port-map annotation."""
        await self._kubelet().sandbox_changed(namespace, name, new_ip)
        return self.store.get(PODS, namespace, name)

    async def kill_pod(self, namespace: str, name: str) -> None:
        """Delete the pod at once (no grace period) and kill its workload."""
        await self._kubelet().kill(namespace, name)

    async def crash_pod(
        self, namespace: str, name: str, *, exit_code: int = 1, reason: str = "Error"
    ) -> JSON:
        """The pod's workload exits by itself: restarted per its restartPolicy (with
        back-off, CrashLoopBackOff), or Failed/Succeeded under Never."""
        runtime = self._kubelet().runtime(namespace, name)
        runtime.ctx.report_exit(exit_code, reason)
        return self.store.get(PODS, namespace, name)

    def set_probe(self, namespace: str, name: str, kind: str, passing: bool | None) -> None:
        """Force the verdict of a pod's `startupProbe`, `readinessProbe` or
        `livenessProbe` (None: evaluate it again)."""
        overrides = self._kubelet().runtime(namespace, name).probe_overrides
        if passing is None:
            overrides.pop(kind, None)
        else:
            overrides[kind] = passing

    def set_image_pullable(self, image: str, pullable: bool) -> None:
        """Make the kubelet fail (ErrImagePull/ImagePullBackOff) or succeed pulling `image`
        (images on a `*.invalid` registry never pull)."""
        images = self._kubelet().unpullable_images
        if pullable:
            images.discard(image)
        else:
            images.add(image)

    async def lose_node(self) -> JSON:
        """The kubelet's node is lost: Ready=Unknown (unreachable taint), its pods not
        Ready, workloads killed, and nothing finishes their deletion any more: they stay
        Terminating until the Node is deleted or they are force-deleted."""
        await self._kubelet().lose_node()
        return self.store.get(NODES, None, self._kubelet().node_name)

    def mark_unschedulable(
        self, namespace: str, name: str, message: str = "0/1 nodes are available"
    ) -> JSON:
        """What the scheduler writes for a pod no node fits (yet): PodScheduled=False,
        reason Unschedulable (e.g. while Karpenter provisions capacity)."""

        def unschedulable(pod: JSON) -> None:
            status = pod.setdefault("status", {})
            status.setdefault("phase", "Pending")
            podstatus.set_condition(status, "PodScheduled", False, "Unschedulable")
            for condition in status["conditions"]:
                if condition["type"] == "PodScheduled":
                    condition["message"] = message

        self.store.mutate(PODS, namespace, name, unschedulable)
        return self.store.get(PODS, namespace, name)

    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> JSON:
        self._kubelet().set_ready(namespace, name, ready)
        return self.store.get(PODS, namespace, name)

    def append_pod_log(
        self, namespace: str, name: str, text: str, container: str | None = None
    ) -> None:
        """Append text to a container's log (the pod's only/first container by default)."""
        pod = self.store.get(PODS, namespace, name)
        container = container or pod["spec"]["containers"][0]["name"]
        self.logs.buffer(pod["metadata"]["uid"], container).append(text)
