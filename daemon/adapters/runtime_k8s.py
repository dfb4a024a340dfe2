"""Runtime on Kubernetes pods (kubernetes_asyncio), the production adapter.

* start: create or replace the tenant's Secret (rendered openclaw.json + tokens), then claim
  a warm pod of the tenant's image and bind it (warm_pool.py, warm_bootstrap.py: its
  gateway is already booted; the bind carries the bound config and, with S3 state,
  tenant-scoped credentials from tenant_credentials.py) or create ``openclaw-{id}``.
  409 AlreadyExists adopts the existing pod, so start is idempotent across replicas.
* Readiness, get, list and watch come from one shared PodInformer (List+Watch, no polling):
  ``wait_ready`` is a predicate over the informer cache resolved by the next pod event.
* stop: delete the tenant's pods with a grace period; the native sync sidecar's preStop does
  the final S3 sync after the gateway drained, and the pod disappears only after that, so
  waiting for DELETED waits for the sync. Then the Secret goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from daemon.adapters.aws import sts_client
from daemon.agent.activity import fetch_agent_activity
from daemon.agent.openclaw_config import ModelProvider, model_provider
from daemon.coordination import Coordination
from daemon.kube import manifests as m
from daemon.kube import names
from daemon.kube.client import JSON, ApiException, call_json, open_api_client
from daemon.kube.informer import DELETED, PodInformer
from daemon.kube.pod_deletion import PodDeletion
from daemon.kube.pod_status import (
    instance_from_pod,
    pod_endpoint,
    pod_phase,
    unschedulable_reason,
)
from daemon.kube.tenant_credentials import (
    CredentialRefresher,
    CredentialVendor,
)
from daemon.kube.warm_binding import WarmBinding
from daemon.kube.warm_pool import WarmPool, hooks_token_for
from daemon.log_options import DEFAULT_LOG_OPTIONS, LogOptions
from daemon.metrics import (
    COLD,
    PHASE_CHANNEL_UP,
    WARM,
    Metrics,
)
from daemon.ports import (
    AgentActivity,
    AgentFailed,
    AgentLaunch,
    CapacityUnavailable,
    Instance,
    InstanceEvent,
    InstancePhase,
    StateStore,
)
from daemon.settings import Settings

log = logging.getLogger(__name__)

GATEWAY_CONTAINER = "gateway"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class StartTiming:
    """How one start went: ``warm`` (claimed and bound) or ``cold`` (created)."""

    kind: str
    started_at: float
    ready_at: float | None = None

    @property
    def to_ready_s(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at


@dataclass(eq=False, kw_only=True)
class KubernetesRuntime(PodDeletion, WarmBinding):
    api: Any
    informer: PodInformer
    pod_settings: m.PodSettings
    session: aiohttp.ClientSession
    webhook_url_for: Callable[[str], str]
    api_root: str | None
    warm_pool: WarmPool | None = None
    metrics: Metrics | None = None
    owns_api: bool = True
    model_provider: ModelProvider | None = None
    credentials: CredentialVendor | None = None
    """Vends tenant-scoped S3 credentials to claimed warm pods (None: no warm claims
    while state is synced to S3, since a warm pod could not reach the tenant's state)."""
    state_store: StateStore | None = None
    """Where the tenant's global database can be read before a warm claim (what a
    warm gateway cannot take over sends the tenant cold: daemon/agent/state.py), and
    where each sleep packs the synced tree into the snapshot history."""
    provisioning_timeout_s: float = 0.0
    """How long wait_ready waits on, past its timeout, while the pod is Unschedulable."""

    def __post_init__(self) -> None:
        # Typed Any: responses are raw (_preload_content=False), not the declared models.
        self.core: Any = client.CoreV1Api(self.api)
        self.namespace = self.pod_settings.namespace
        credentials = self.credentials
        self.refresher = (
            CredentialRefresher(
                vendor=credentials,
                bound_pods=self._bound_warm_pods,
                push=self._push_credentials,
                # 15 min before expiry, or half the lifetime of short-lived sessions.
                margin=timedelta(seconds=min(900, credentials.duration_s // 2)),
            )
            if credentials is not None
            else None
        )
        self.timings: dict[str, StartTiming] = {}
        """The last start of each tenant (claim-to-ready vs create-to-ready, for bench/)."""
        self._expected: dict[str, str] = {}  # tenant → uid of the pod start() produced
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """tenant → (its start/stop lock, callers holding or awaiting it): only while used."""

    @classmethod
    async def open(
        cls,
        *,
        settings: Settings,
        coordination: Coordination,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        webhook_url_for: Callable[[str], str],
        state_store: StateStore | None = None,
    ) -> KubernetesRuntime:
        pod_settings = m.PodSettings.from_settings(settings)
        api = await open_api_client(settings.kubeconfig)
        informer = PodInformer(api, pod_settings.namespace)
        listing = time.monotonic()
        try:
            await informer.start()
        except BaseException:
            await api.close()
            raise
        # Most of a large daemon's start-up (10,000 pods: seconds): worth a log line.
        log.info(
            "pod informer: %d pods listed in %.2f s",
            len(informer.pods()),
            time.monotonic() - listing,
        )
        provider = model_provider(settings)

        def render_warm(bind_key: str) -> JSON:
            return m.render_warm_pod_config(
                pod_settings,
                api_root=settings.telegram_api_base,
                model_provider=provider,
                gateway_token="replaced-at-boot",  # per pod, by the bootstrap
                hooks_token=hooks_token_for(bind_key),
            )

        pool = WarmPool(
            api=api,
            informer=informer,
            pod_settings=pod_settings,
            coordination=coordination,
            metrics=metrics,
            render_warm_config=render_warm,
        )
        vendor = (
            CredentialVendor(
                sts_client(settings.aws_region, settings.sts_endpoint_url),
                role_arn=settings.tenant_state_role_arn,
                bucket=settings.s3_bucket,
                duration_s=settings.tenant_credentials_ttl_s,
            )
            if settings.tenant_state_role_arn and pod_settings.state_sync
            else None
        )
        return cls(
            api=api,
            informer=informer,
            pod_settings=pod_settings,
            session=session,
            webhook_url_for=webhook_url_for,
            api_root=settings.telegram_api_base,
            warm_pool=pool,
            metrics=metrics,
            model_provider=provider,
            credentials=vendor,
            state_store=state_store if pod_settings.state_sync else None,
            provisioning_timeout_s=settings.k8s_provisioning_timeout_s,
        )

    # -- lookups ----------------------------------------------------------------------------

    def _pods_of(self, tenant_id: str, cache: Mapping[str, JSON] | None = None) -> list[JSON]:
        if cache is None or cache is self.informer.cache:
            return self.informer.pods_of(tenant_id)  # indexed: no scan of every pod
        return [p for p in cache.values() if m.pod_tenant(p) == tenant_id]

    def _current_pod(self, tenant_id: str, cache: Mapping[str, JSON] | None = None) -> JSON | None:
        """The tenant's live pod: the one start() made if known, else a non-terminating one."""
        pods = self._pods_of(tenant_id, cache)
        uid = self._expected.get(tenant_id)
        for pod in pods:
            if uid and pod["metadata"].get("uid") == uid:
                return pod
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if live:
            return sorted(live, key=lambda p: p["metadata"].get("creationTimestamp") or "")[-1]
        return pods[0] if pods else None

    @contextlib.asynccontextmanager
    async def _locked(self, tenant_id: str) -> AsyncIterator[None]:
        """One start/stop of a tenant at a time on this replica. The entry goes with its
        last user: the map holds the tenants being started or stopped now, not every
        tenant ever woken (100,000 of them over a daemon's life)."""
        lock, users = self._locks.get(tenant_id) or (asyncio.Lock(), 0)
        self._locks[tenant_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[tenant_id]
            if users == 1:
                del self._locks[tenant_id]
            else:
                self._locks[tenant_id] = (lock, users - 1)

    # -- start ------------------------------------------------------------------------------

    async def start(self, launch: AgentLaunch) -> Instance:
        tenant_id = launch.tenant_id
        async with self._locked(tenant_id):
            started = time.monotonic()
            if (live := self._live_pod(tenant_id)) is not None:
                return live
            config = m.render_tenant_config(
                launch,
                webhook_url=self.webhook_url_for(tenant_id),
                api_root=launch.api_root or self.api_root,
                # The model key lives in openclaw.json, i.e. in the tenant Secret (or the
                # bind request of a warm pod), never in a plain env value of the pod spec.
                model_provider=self.tenant_model_provider(launch),
                tuning=self.pod_settings.tuning,
            )
            text = m.config_json(config)
            await self._apply_secret(launch, text)
            if (live := self._live_pod(tenant_id)) is not None:  # another replica was faster
                return live
            await self._clear_dead_pods(tenant_id)
            pod = await self._claim_warm(launch)
            kind = WARM
            if pod is None:
                pod = await self._create_pod(tenant_id, launch.image, m.config_hash(text))
                kind = COLD
            await self._own_secret(tenant_id, pod)
            self._expected[tenant_id] = pod["metadata"]["uid"]
            self.timings[tenant_id] = StartTiming(kind=kind, started_at=started)
            log.info("started %s pod %s for %s", kind, pod["metadata"]["name"], tenant_id)
            return instance_from_pod(pod)

    def _live_pod(self, tenant_id: str) -> Instance | None:
        """Adopt the tenant's pending or ready pod, if it has one."""
        pod = self._current_pod(tenant_id)
        if pod is None or pod_phase(pod) not in (InstancePhase.PENDING, InstancePhase.READY):
            return None
        self._expected[tenant_id] = pod["metadata"]["uid"]
        return instance_from_pod(pod)

    async def _apply_secret(self, launch: AgentLaunch, config_text: str) -> None:
        body = m.tenant_secret(launch, config_text, namespace=self.namespace)
        name = body["metadata"]["name"]
        try:
            await call_json(self.core.create_namespaced_secret, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # No resourceVersion: an unconditional replace; the newest launch wins.
            await call_json(self.core.replace_namespaced_secret, name, self.namespace, body)

    async def _own_secret(self, tenant_id: str, pod: JSON) -> None:
        """Make the tenant's Secret a dependent of its pod: if this daemon dies before
        stop() deletes it, the garbage collector does once the pod is gone."""
        await call_json(
            self.core.patch_namespaced_secret,
            names.tenant_secret_name(tenant_id),
            self.namespace,
            m.owned_by_pod(pod),
            _content_type="application/merge-patch+json",
        )

    async def _clear_dead_pods(self, tenant_id: str) -> None:
        """Remove the tenant's failed pods and wait out terminating ones (forcing those
        stranded on a lost node), so the new pod never shares the tenant's state with an
        old one still syncing."""
        dead = [p for p in self._pods_of(tenant_id) if pod_phase(p) is InstancePhase.FAILED]
        for pod in dead:
            await self._delete_pod(pod["metadata"]["name"], grace_s=0, uid=pod["metadata"]["uid"])
        for pod in self._pods_of(tenant_id):
            await self._wait_gone(pod["metadata"]["name"], pod["metadata"].get("uid"), pod)

    async def _create_pod(self, tenant_id: str, image: str | None, config_sha: str) -> JSON:
        body = m.tenant_pod(
            tenant_id, settings=self.pod_settings, image=image, config_sha256=config_sha
        )
        name = body["metadata"]["name"]
        try:
            return await call_json(self.core.create_namespaced_pod, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        # Another replica (or an earlier attempt) created it: adopt it, unless it is on its
        # way out, in which case wait for it to go and create ours.
        existing = await call_json(self.core.read_namespaced_pod, name, self.namespace)
        if pod_phase(existing) not in (InstancePhase.STOPPING, InstancePhase.FAILED):
            return existing
        if pod_phase(existing) is InstancePhase.FAILED:
            await self._delete_pod(name, grace_s=0, uid=existing["metadata"]["uid"])
        await self._wait_gone(name, existing["metadata"]["uid"], existing)
        return await call_json(self.core.create_namespaced_pod, self.namespace, body)

    # -- readiness --------------------------------------------------------------------------

    async def wait_ready(self, tenant_id: str, timeout: float) -> Instance:
        if tenant_id not in self._expected and not self._pods_of(tenant_id):
            raise AgentFailed(f"tenant {tenant_id!r} has no instance")
        seen: set[str] = set()
        unschedulable: list[str] = []  # the scheduler's last word, while no node fits

        def ready(cache: Mapping[str, JSON]) -> Instance | None:
            pod = self._current_pod(tenant_id, cache)
            uid = self._expected.get(tenant_id)
            if pod is None or (uid and pod["metadata"].get("uid") != uid):
                if uid and uid in seen:
                    raise AgentFailed(f"the pod of {tenant_id} was deleted while starting")
                return None
            seen.add(pod["metadata"]["uid"])
            if (waiting_for_node := unschedulable_reason(pod)) is not None:
                unschedulable[:] = [waiting_for_node]
            elif (pod.get("spec") or {}).get("nodeName"):
                unschedulable.clear()
            instance = instance_from_pod(pod)
            if instance.phase is InstancePhase.READY:
                return instance
            if instance.phase is InstancePhase.FAILED:
                raise AgentFailed(f"pod {instance.name} failed: {instance.reason}")
            if instance.phase is InstancePhase.STOPPING:
                raise AgentFailed(f"pod {instance.name} is being deleted")
            return None

        provisioning_until = time.monotonic() + max(timeout, self.provisioning_timeout_s)
        try:
            instance = await self.informer.wait_for(ready, timeout)
        except TimeoutError:
            # Capacity being provisioned (Karpenter launching a node) is no failed boot:
            # wait on up to the provisioning budget while the pod has no node.
            if not unschedulable or time.monotonic() >= provisioning_until:
                raise
            log.info(
                "pod of %s is unschedulable (%s): waiting for capacity", tenant_id, unschedulable[0]
            )
            try:
                instance = await self.informer.wait_for(
                    ready, provisioning_until - time.monotonic()
                )
            except TimeoutError:
                if unschedulable:
                    raise CapacityUnavailable(
                        f"no node for the pod of {tenant_id}: {unschedulable[0]}"
                    ) from None
                raise
        timing = self.timings.get(tenant_id)
        if timing is not None and timing.ready_at is None:
            timing = StartTiming(timing.kind, timing.started_at, time.monotonic())
            self.timings[tenant_id] = timing
            if self.metrics is not None and timing.to_ready_s is not None:
                phase = "pod_claim_to_ready" if timing.kind == "warm" else "pod_create_to_ready"
                self.metrics.wake_phase_seconds.labels(phase=phase).observe(timing.to_ready_s)
                if timing.kind == COLD:  # create → ready, the boot included
                    self._observe(PHASE_CHANNEL_UP, COLD, timing.to_ready_s)
                else:
                    await self._observe_bind_phases(tenant_id)
        return instance

    # -- stop -------------------------------------------------------------------------------

    async def stop(self, tenant_id: str, *, grace_s: float) -> None:
        async with self._locked(tenant_id):
            names_to_delete = {p["metadata"]["name"] for p in self._pods_of(tenant_id)}
            # The informer may not have seen a pod created a moment ago.
            names_to_delete.add(names.tenant_pod_name(tenant_id))
            deleted = []
            # The gateway drains within grace_s; the final sync needs its time after that.
            pod_grace_s = self.pod_settings.deletion_grace_s(grace_s)
            for name in sorted(names_to_delete):
                pod = await self._delete_pod(name, grace_s=pod_grace_s)
                if pod is not None:
                    deleted.append(pod)
            for pod in deleted:
                await self._wait_gone(pod["metadata"]["name"], pod["metadata"].get("uid"), pod)
            try:
                await call_json(
                    self.core.delete_namespaced_secret,
                    names.tenant_secret_name(tenant_id),
                    self.namespace,
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
            self._expected.pop(tenant_id, None)
            self.timings.pop(tenant_id, None)  # kept per tenant while it runs, not forever
            if deleted and self.state_store is not None:
                await self._record_history(tenant_id)

    async def _record_history(self, tenant_id: str) -> None:
        """The tree the final sync left (the pods are gone) as a "sleep" history entry.
        Housekeeping: the state itself is saved, so a failure is logged, not raised."""
        assert self.state_store is not None
        try:
            await self.state_store.record_tree(tenant_id, trigger="sleep")
        except Exception as exc:
            log.warning("snapshot history of %s at sleep failed: %s", tenant_id, exc)

    # -- queries ----------------------------------------------------------------------------

    # A failed pod (its gateway exited) is a dead instance: get/list do not report it, and
    # watch reports its failure as "deleted" (phase FAILED, with the reason), as the local
    # runtime does for a crashed process. The pod object stays until the next start or
    # stop removes it, so its logs remain readable for a post-mortem.

    async def get(self, tenant_id: str) -> Instance | None:
        pod = self._current_pod(tenant_id)
        if pod is None:
            return None
        instance = instance_from_pod(pod)
        return None if instance.phase is InstancePhase.FAILED else instance

    async def list(self) -> list[Instance]:
        instances = (instance_from_pod(p) for p in self.informer.pods())
        return [i for i in instances if i.phase is not InstancePhase.FAILED]

    async def watch(self) -> AsyncIterator[InstanceEvent]:
        reported_failed: set[str] = set()  # uids whose end was already reported
        with self.informer.subscribe() as events:
            async for kind, pod in events:
                uid = pod["metadata"].get("uid", "")
                if uid in reported_failed:
                    if kind == DELETED:
                        reported_failed.discard(uid)
                    continue  # one "deleted" per instance
                instance = instance_from_pod(pod, gone=kind == DELETED)
                if instance.phase is InstancePhase.FAILED:
                    reported_failed.add(uid)
                ended = kind == DELETED or instance.phase is InstancePhase.FAILED
                yield InstanceEvent(kind="deleted" if ended else kind.lower(), instance=instance)

    async def logs(
        self,
        tenant_id: str,
        *,
        follow: bool,
        since_s: float | None,
        options: LogOptions = DEFAULT_LOG_OPTIONS,
    ) -> AsyncIterator[str]:
        pod = self._current_pod(tenant_id)
        name = pod["metadata"]["name"] if pod is not None else names.tenant_pod_name(tenant_id)
        kwargs: dict[str, Any] = {"container": options.pod_container, "follow": follow}
        if options.timestamps:
            kwargs["timestamps"] = True
        if options.previous:
            kwargs["previous"] = True
        if since_s is not None:
            kwargs["since_seconds"] = max(1, round(since_s))
        if follow:
            kwargs["_request_timeout"] = aiohttp.ClientTimeout(total=None, sock_read=None)
        try:
            resp = await self.core.read_namespaced_pod_log(
                name, self.namespace, _preload_content=False, **kwargs
            )
        except ApiException as exc:
            raise KeyError(tenant_id) from exc
        try:
            if resp.status == 404:
                raise KeyError(tenant_id)
            if resp.status != 200:
                body = await resp.read()
                raise ApiException(status=resp.status, reason=body.decode(errors="replace"))
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode(errors="replace")
            if buffer:
                yield buffer.decode(errors="replace")
        finally:
            resp.release()

    async def activity(self, tenant_id: str) -> AgentActivity | None:
        instance = await self.get(tenant_id)
        if instance is None or instance.gateway_url is None:
            return None
        return await fetch_agent_activity(self.session, instance.gateway_url, HTTP_TIMEOUT)

    async def close(self) -> None:
        await self.informer.stop()
        if self.owns_api:
            await self.api.close()


__all__ = ["KubernetesRuntime", "StartTiming", "instance_from_pod", "pod_endpoint", "pod_phase"]
