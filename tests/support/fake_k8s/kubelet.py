"""A simulated scheduler + kubelet for one fake node.

* Scheduler: a pod with no `spec.nodeName` whose `schedulerName` is `default-scheduler`
  is bound to this node (PodScheduled=True). Pods naming another scheduler stay unbound,
  as on a real cluster.
* Kubelet: for each pod bound to this node it runs the pod backend (see backend.py):
  Pending/ContainerCreating while `start` runs, then Running with podIP and Ready. On a
  graceful delete it calls `stop` with the grace period, marks the containers terminated
  and finishes the deletion (a grace-0 delete, as a real kubelet does). Pods bound to other
  nodes are left alone: their graceful deletion ends when the grace period elapses.
* Containers are never restarted: a container that exits leaves the pod Failed (or
  Succeeded), whatever its restartPolicy.

It watches the store in-process (not over HTTP) and writes through `Store.mutate`, the
path reserved for cluster components.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from . import errors, podstatus
from .backend import PORT_MAP_ANNOTATION, PodBackend, PodContext, PodStarted
from .kubelet_prepare import backoff_delay, prepare_pod
from .podenv import Lookup
from .podlogs import PodLogs
from .prober import probe_pod, probed_containers
from .resources import EVENTS, NODES, PODS
from .store import TERMINAL_POD_PHASES, Store, Subscription

logger = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str = "fake-node"
    schedule: bool = True  # bind unscheduled pods (schedulerName default-scheduler) here
    start_delay: float = 0.05  # how long the default simulated backend takes to start a pod
    host_ip: str = "127.0.0.1"
    # Pod IPs the kubelet allocates when the backend gives none: loopback addresses, so a
    # client that connects gets a fast "connection refused" instead of a hang.
    pod_ip_prefix: str = "127.10"
    stop_timeout: float = 10.0  # extra time a backend's stop may take beyond the grace period
    backoff_initial: float = 0.2  # restart/pull back-off (a real kubelet: 10 s doubling ...)
    backoff_max: float = 2.0  # (... up to 300 s)
    probe_time_scale: float = 0.05  # probe periods/timeouts: seconds times this (prober.py)


@dataclass(eq=False)
class PodRuntime:
    ctx: PodContext
    task: asyncio.Task[None] | None = None
    started: bool = False  # the backend's start returned
    exited: bool = False  # the containers terminated
    terminating: bool = False  # a stop/kill is under way
    ready: bool | None = None  # readiness set through ctx.set_ready / the control API
    requested_ip: str | None = None
    ip: str | None = None
    restarts: int = 0
    crashes: int = 0  # consecutive exits that led to a restart (the back-off's count)
    init_restarts: dict[str, int] = field(default_factory=dict)
    probe_overrides: dict[str, bool] = field(default_factory=dict)  # kind → forced verdict
    up: asyncio.Event = field(default_factory=asyncio.Event)  # running (probes may go on)

    @property
    def key(self) -> tuple[str, str]:
        return self.ctx.namespace, self.ctx.name


class Kubelet:
    def __init__(
        self, store: Store, logs: PodLogs, backend: PodBackend, config: KubeletConfig
    ) -> None:
        self._store = store
        self._logs = logs
        self._backend = backend
        self._config = config
        self._pods: dict[str, PodRuntime] = {}  # by pod uid
        self._finished: set[str] = set()  # uids whose deletion this kubelet completed
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._ip_serial = 0
        self.unpullable_images: set[str] = set()
        self.node_lost = False

    @property
    def node_name(self) -> str:
        return self._config.node_name

    @property
    def config(self) -> KubeletConfig:
        return self._config

    @property
    def backend(self) -> PodBackend:
        return self._backend

    @property
    def lookup(self) -> Lookup:
        return self._store.peek

    async def start(self) -> None:
        if self._store.peek(NODES, None, self.node_name) is None:
            self._store.create(
                NODES, None, podstatus.ready_node(self.node_name, self._config.host_ip)
            )
        self._subscription = self._store.subscribe(PODS, internal=True)
        for pod in self._store.snapshot(PODS, None):
            self._on_pod("ADDED", pod)
        self._loop_task = asyncio.create_task(self._run(), name="fake-kubelet")

    async def stop(self) -> None:
        """Stop watching, cancel pod work and stop every backend workload still running."""
        if self._subscription is not None:
            self._store.unsubscribe(self._subscription)
        tasks = [t for t in [self._loop_task, *self._tasks] if t is not None]
        tasks += [rt.task for rt in self._pods.values() if rt.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        running = [rt for rt in self._pods.values() if rt.started]
        await asyncio.gather(*(self._stop_backend(rt, 0) for rt in running))
        for rt in self._pods.values():
            self._logs.close_pod(rt.ctx.uid)
        self._pods.clear()

    # Control (used by FakeKubernetes) -------------------------------------------------------

    def runtime(self, namespace: str, name: str) -> PodRuntime:
        pod = self._store.peek(PODS, namespace, name)
        if pod is None:
            raise errors.not_found(PODS, name)
        runtime = self._pods.get(pod["metadata"]["uid"])
        if runtime is None:
            raise LookupError(f"pod {namespace}/{name} is not run by kubelet {self.node_name}")
        return runtime

    async def fail(
        self, namespace: str, name: str, exit_code: int, reason: str, message: str | None
    ) -> None:
        runtime = self.runtime(namespace, name)
        await self._cancel(runtime)
        self._exit(runtime, exit_code, reason, message)
        if runtime.started:
            await self._stop_backend(runtime, 0)

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        self._set_ready(self.runtime(namespace, name), ready)

    async def sandbox_changed(self, namespace: str, name: str, new_ip: str | None) -> None:
        """Kata's SandboxChanged: the sandbox is re-created, containers restart, IP drifts."""
        runtime = self.runtime(namespace, name)
        await self._cancel(runtime)
        self.write(runtime, podstatus.mark_sandbox_lost)
        self.record_event(
            runtime, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created."
        )
        if runtime.started:
            await self._stop_backend(runtime, 0)
        runtime.started = runtime.exited = False
        runtime.restarts += 1
        runtime.ip, runtime.requested_ip = None, new_ip
        runtime.up.clear()
        task = self._start_runtime(runtime, restart=True)
        up = asyncio.ensure_future(runtime.up.wait())
        await asyncio.wait({task, up}, return_when=asyncio.FIRST_COMPLETED)  # probes go on
        up.cancel()

    async def kill(self, namespace: str, name: str) -> None:
        """Remove the pod at once and kill its workload, as if its node vanished."""
        pod = self._store.peek(PODS, namespace, name)
        if pod is None:
            raise errors.not_found(PODS, name)
        runtime = self._pods.get(pod["metadata"]["uid"])
        if runtime is not None:
            runtime.terminating = True
        self._store.delete(PODS, namespace, name, grace_period_seconds=0)
        if runtime is not None:
            await self._kill(runtime)

    async def lose_node(self) -> None:
        """The node vanished (powered off, network gone): Ready becomes Unknown, its pods
        not Ready, their workloads die, and this kubelet acts no more."""
        self.node_lost = True
        self._store.mutate(NODES, None, self.node_name, podstatus.mark_node_lost)
        for pod in self._store.snapshot(PODS, None):
            if (pod.get("spec") or {}).get("nodeName") == self.node_name:
                meta = pod["metadata"]
                self._store.mutate(
                    PODS, meta["namespace"], meta["name"], lambda p: podstatus.mark_ready(p, False)
                )
        runtimes = list(self._pods.values())
        for runtime in runtimes:
            runtime.terminating = True
            await self._cancel(runtime)
        await asyncio.gather(*(self._stop_backend(rt, 0) for rt in runtimes if rt.started))
        for runtime in runtimes:
            self._logs.close_pod(runtime.ctx.uid)
        self._pods.clear()

    # The watch loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._subscription is not None
        while (change := await self._subscription.queue.get()) is not None:
            try:
                self._on_pod(change.type, change.obj)
            except Exception:
                logger.exception("fake kubelet failed to handle %s", change.type)

    def _on_pod(self, kind: str, pod: JSON) -> None:
        if self.node_lost:
            return
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        runtime = self._pods.get(uid)
        if kind == "DELETED":
            if runtime is not None and not runtime.terminating:
                runtime.terminating = True
                self._spawn(self._kill(runtime), f"fake-kubelet-kill-{meta['name']}")
            return
        node = spec.get("nodeName")
        if not node:
            if (
                self._config.schedule
                and not meta.get("deletionTimestamp")
                and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
            ):
                self._store.mutate(
                    PODS,
                    meta["namespace"],
                    meta["name"],
                    lambda p: podstatus.mark_scheduled(p, self.node_name),
                    uid=uid,
                )
            return
        if node != self.node_name or uid in self._finished:
            return
        if meta.get("deletionTimestamp"):
            if runtime is None:
                runtime = self._new_runtime(pod)
            if not runtime.terminating:
                runtime.terminating = True
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self._spawn(self._terminate(runtime, grace), f"fake-kubelet-stop-{meta['name']}")
            return
        phase = (pod.get("status") or {}).get("phase")
        if runtime is None and phase not in TERMINAL_POD_PHASES:
            runtime = self._new_runtime(pod)
            self._start_runtime(runtime, restart=False)

    # Pod lifecycle -------------------------------------------------------------------------

    def _start_runtime(self, runtime: PodRuntime, *, restart: bool) -> asyncio.Task[None]:
        task = asyncio.create_task(
            self._run_pod(runtime, restart=restart), name=f"fake-kubelet-pod-{runtime.ctx.name}"
        )
        runtime.task = task
        return task

    async def _run_pod(self, runtime: PodRuntime, *, restart: bool) -> None:
        if not restart:
            self.write(
                runtime, lambda p: podstatus.mark_pending(p, self._config.host_ip, runtime.restarts)
            )
            if not await prepare_pod(self, runtime):
                return
        runtime.ready = None  # a (re)started container is Ready only once it says so
        try:
            started = await self._backend.start(runtime.ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("pod backend could not start %s/%s", *runtime.key)
            self._exit(runtime, 128, "StartError", str(exc), restartable=True)
            return
        runtime.started = True
        if runtime.exited:  # the workload already reported its exit
            return
        runtime.ip = runtime.requested_ip or started.pod_ip or self._allocate_ip()
        annotations = _annotations(started)
        probed = probed_containers(runtime.ctx.pod)
        gated = any("readinessProbe" in c or "startupProbe" in c for c in probed)
        ready = started.ready if runtime.ready is None else runtime.ready
        ready = ready and not gated  # Ready waits for the probes
        ip, restarts = runtime.ip, runtime.restarts

        def run(pod: JSON) -> None:
            if annotations:
                pod["metadata"]["annotations"] = {
                    **(pod["metadata"].get("annotations") or {}),
                    **annotations,
                }
            podstatus.mark_running(pod, ip, restarts, ready=ready)
            for cs in pod["status"]["containerStatuses"]:
                if any(c["name"] == cs["name"] and "startupProbe" in c for c in probed):
                    cs["started"] = False

        self.write(runtime, run)
        runtime.up.set()
        if probed:
            await probe_pod(self, runtime)

    async def _terminate(self, runtime: PodRuntime, grace: float) -> None:
        await self._cancel(runtime)
        if runtime.started:
            await self._stop_backend(runtime, grace)
            if not runtime.exited:
                self.write(runtime, lambda p: podstatus.mark_terminated(p, 0, "Completed", None))
        runtime.exited = True
        self._forget(runtime)
        with contextlib.suppress(errors.ApiError):  # already gone, or replaced by a namesake
            self._store.delete(
                PODS, *runtime.key, grace_period_seconds=0, preconditions={"uid": runtime.ctx.uid}
            )

    async def _kill(self, runtime: PodRuntime) -> None:
        await self._cancel(runtime)
        if runtime.started:
            await self._stop_backend(runtime, 0)
        self._forget(runtime)

    def _forget(self, runtime: PodRuntime) -> None:
        self._logs.close_pod(runtime.ctx.uid)
        self._pods.pop(runtime.ctx.uid, None)
        self._finished.add(runtime.ctx.uid)

    async def _cancel(self, runtime: PodRuntime) -> None:
        task, runtime.task = runtime.task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})

    async def _stop_backend(self, runtime: PodRuntime, grace: float) -> None:
        try:
            await asyncio.wait_for(
                self._backend.stop(runtime.ctx, grace), grace + self._config.stop_timeout
            )
        except Exception:
            logger.exception("pod backend could not stop %s/%s", *runtime.key)

    # Callbacks behind PodContext -----------------------------------------------------------

    def _new_runtime(self, pod: JSON) -> PodRuntime:
        runtime: PodRuntime  # bound below; the callbacks only run once it exists

        def report_exit(code: int, reason: str | None, message: str | None) -> None:
            self._exit(runtime, code, reason, message, restartable=True)

        ctx = PodContext(
            pod=pod,
            node_name=self.node_name,
            write_log=lambda text, container: self._write_log(runtime, text, container),
            set_ready=lambda ready: self._set_ready(runtime, ready),
            report_exit=report_exit,
            lookup=self._store.peek,
        )
        runtime = self._pods[pod["metadata"]["uid"]] = PodRuntime(ctx)
        return runtime

    def _write_log(self, runtime: PodRuntime, text: str, container: str | None) -> None:
        name = container or runtime.ctx.container_names[0]
        self._logs.buffer(runtime.ctx.uid, name).append(text)

    def _set_ready(self, runtime: PodRuntime, ready: bool) -> None:
        runtime.ready = ready
        if runtime.started and not runtime.exited:
            self.write(runtime, lambda p: podstatus.mark_ready(p, ready))

    def _exit(
        self,
        runtime: PodRuntime,
        code: int,
        reason: str | None,
        message: str | None,
        *,
        restartable: bool = False,
    ) -> None:
        if runtime.exited:
            return
        runtime.exited = True
        reason = reason or ("Completed" if code == 0 else "Error")
        policy = (runtime.ctx.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if (
            restartable
            and not runtime.terminating
            and (policy == "Always" or (policy == "OnFailure" and code != 0))
        ):
            self.write(runtime, lambda p: podstatus.mark_crashed(p, code, reason, message))
            self._spawn(self._restart(runtime), f"fake-kubelet-restart-{runtime.ctx.name}")
            return
        self.write(runtime, lambda p: podstatus.mark_terminated(p, code, reason, message))
        self._logs.close_pod(runtime.ctx.uid)

    async def _restart(self, runtime: PodRuntime) -> None:
        """Restart exited containers: at once the first time, then after a back-off."""
        await self._cancel(runtime)  # its probes
        if runtime.started:
            await self._stop_backend(runtime, 0)
        runtime.started = False
        runtime.crashes += 1
        if runtime.crashes > 1:
            delay = backoff_delay(
                self._config.backoff_initial, self._config.backoff_max, runtime.crashes - 1
            )
            ctx = runtime.ctx

            def waiting(pod: JSON) -> None:
                for name in ctx.container_names:
                    message = (
                        f"back-off {delay:g}s restarting failed container={name} "
                        f"pod={ctx.name}_{ctx.namespace}({ctx.uid})"
                    )
                    podstatus.mark_waiting(pod, name, "CrashLoopBackOff", message)

            self.write(runtime, waiting)
            self.record_event(
                runtime, "BackOff", "Back-off restarting failed container", warning=True
            )
            await asyncio.sleep(delay)
        if runtime.terminating or runtime.ctx.uid not in self._pods:
            return
        runtime.restarts += 1
        runtime.exited = False
        self._start_runtime(runtime, restart=True)

    # Used by kubelet_prepare ---------------------------------------------------------------

    def write(self, runtime: PodRuntime, change: Callable[[JSON], None]) -> None:
        self._store.mutate(PODS, *runtime.key, change, uid=runtime.ctx.uid)

    async def run_init(self, runtime: PodRuntime, container: JSON) -> int:
        """An init container's exit code: the backend's `run_init` if it has one, else 0."""
        run = getattr(self._backend, "run_init", None)
        return 0 if run is None else int(await run(runtime.ctx, container))

    def kill_container(self, runtime: PodRuntime, message: str) -> None:
        """A failed liveness/startup probe: the kubelet kills the container (SIGKILL)."""
        self._exit(runtime, 137, "Error", message, restartable=True)

    def fail_pod_status(self, runtime: PodRuntime, code: int, reason: str) -> None:
        runtime.exited = True

        def failed(pod: JSON) -> None:
            status = pod.setdefault("status", {})
            status["phase"] = "Failed"
            podstatus.mark_ready(pod, False)
            podstatus.set_condition(status, "Ready", False, "PodFailed")

        self.write(runtime, failed)

    # Helpers -------------------------------------------------------------------------------

    def _allocate_ip(self) -> str:
        self._ip_serial += 1
        serial = self._ip_serial
        return f"{self._config.pod_ip_prefix}.{(serial >> 8) & 255}.{serial & 255}"

    def record_event(
        self, runtime: PodRuntime, reason: str, message: str, *, warning: bool = False
    ) -> None:
        namespace, name = runtime.key
        event = podstatus.pod_event(
            namespace, name, runtime.ctx.uid, self.node_name, reason, message, warning=warning
        )
        with contextlib.suppress(errors.ApiError):
            self._store.create(EVENTS, namespace, event)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())


def _annotations(started: PodStarted) -> dict[str, str]:
    annotations = dict(started.annotations)
    if started.ports:
        annotations[PORT_MAP_ANNOTATION] = json.dumps(
            {str(port): host for port, host in sorted(started.ports.items())}
        )
    return annotations
