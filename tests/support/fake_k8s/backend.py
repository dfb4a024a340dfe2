"""The pod backend hook: what the simulated kubelet runs for each pod it is given.

A backend turns "a pod was scheduled to the fake node" into something real, e.g. a local
agent process, so the daemon's unmodified Kubernetes adapter drives real workloads:

    class LocalAgentBackend:
        async def start(self, ctx: PodContext) -> PodStarted:
            proc = await spawn_agent(tenant=ctx.pod["metadata"]["labels"]["otm/tenant"])
            ctx.write_log("agent booting\\n")
            watch_exit(proc, lambda code: ctx.report_exit(code))   # process died → pod Failed
            await proc.wait_ready()                                 # return once it serves
            return PodStarted(pod_ip="127.0.0.1", ports={8787: proc.webhook_port})

        async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
            await terminate(proc, grace_seconds)                    # SIGTERM, then SIGKILL

Contract:
* `start` runs when the pod is bound to the kubelet's node (and again after a simulated
  sandbox change). While it runs the pod is Pending with its container waiting in
  `ContainerCreating`. When it returns the kubelet writes, in ONE update: `status.podIP`
  (the returned `pod_ip`, else an address the kubelet allocates), phase Running,
  conditions Ready/ContainersReady = `ready`, the returned `annotations`, and
  `ports` as the JSON annotation `PORT_MAP_ANNOTATION` (`{"8787": 40123}`: container port
  → port on the pod IP). A client that sees Ready also sees the port map.
* `start` may be cancelled (the pod was deleted while starting); it must then clean up
  whatever it began. If it raises, the pod goes to phase Failed (reason `StartError`).
* `stop` runs when the pod is deleted: with the pod's grace period for a graceful delete,
  with 0 for a forced delete, an abrupt kill, a failure injected by a test, or server
  shutdown. It may be called for a process that already exited, and must not raise.
* Optional `run_init(ctx, container) -> exit code` runs one (non-sidecar) init container;
  without it init containers succeed at once.
* Optional `probe(ctx, container, kind, probe) -> bool` evaluates a startup/readiness/
  liveness probe; without it the kubelet probes for real (httpGet/tcpSocket on the pod IP
  through the port map, prober.py), so a backend running real processes needs none.
* `ctx.env()` and `ctx.volume_files(name)` resolve the pod's env and Secret/ConfigMap
  volumes from the store, as a kubelet would, so a backend can hand a local process the
  same configuration the pod spec gives the container.
* `ctx.report_exit(code)` marks the container terminated (phase Failed, or Succeeded for
  code 0); `ctx.set_ready(flag)` flips readiness; `ctx.write_log(text)` feeds `pods/log`.
  All three are plain synchronous calls, safe from any task on the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .kubelet_prepare import scripted_exit_code
from .podenv import Lookup, container_env, volume_files

JSON = dict[str, Any]

PORT_MAP_ANNOTATION = "fake-k8s.otm.dev/port-map"


@dataclass(frozen=True)
class PodStarted:
    """What a backend reports once the pod's workload is up."""

    pod_ip: str | None = None
    ports: Mapping[int, int] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True


class PodContext:
    """The kubelet's handle on one pod, given to the backend."""

    def __init__(
        self,
        *,
        pod: JSON,
        node_name: str,
        write_log: Callable[[str, str | None], None],
        set_ready: Callable[[bool], None],
        report_exit: Callable[[int, str | None, str | None], None],
        lookup: Lookup,
    ) -> None:
        self.pod = pod  # the pod as it was when bound to the node (read-only)
        self.node_name = node_name
        self._lookup = lookup
        self._write_log = write_log
        self._set_ready = set_ready
        self._report_exit = report_exit

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def container_names(self) -> list[str]:
        return [c["name"] for c in self.pod["spec"]["containers"]]

    def env(self, container: str | None = None) -> dict[str, str]:
        """The container's environment as a kubelet builds it (env, envFrom, secretKeyRef,
        configMapKeyRef, fieldRef); raises ConfigError for a missing non-optional ref."""
        return container_env(self._lookup, self.pod, container or self.container_names[0])

    def volume_files(self, volume: str) -> dict[str, bytes]:
        """The files of a Secret/ConfigMap volume ({path: content}), e.g. to write into the
        directory a local process reads as its mount."""
        return volume_files(self._lookup, self.pod, volume)

    def write_log(self, text: str, container: str | None = None) -> None:
        """Append to a container's log (the first container by default)."""
        self._write_log(text, container)

    def set_ready(self, ready: bool) -> None:
        self._set_ready(ready)

    def report_exit(
        self, exit_code: int, reason: str | None = None, message: str | None = None
    ) -> None:
        """The workload ended by itself; the pod becomes Failed (or Succeeded for 0)."""
        self._report_exit(exit_code, reason, message)


class PodBackend(Protocol):
    async def start(self, ctx: PodContext) -> PodStarted: ...

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None: ...


class SimulatedPodBackend:
    """The default: no process at all; a pod becomes Ready `start_delay` seconds after it
    is bound. A container whose command is just `sh -c "exit N"` (init or main) ends with
    N, as it would on a real node (so crash-loop tests run on both)."""

    def __init__(self, start_delay: float = 0.05) -> None:
        self.start_delay = start_delay

    async def start(self, ctx: PodContext) -> PodStarted:
        await asyncio.sleep(self.start_delay)
        codes = [scripted_exit_code(c) for c in ctx.pod["spec"]["containers"]]
        exit_code = next((c for c in codes if c is not None), None)
        if exit_code is not None:  # it exits right after it started
            asyncio.get_running_loop().call_soon(ctx.report_exit, exit_code)
            return PodStarted(ready=False)
        return PodStarted()

    async def probe(self, ctx: PodContext, container: JSON, kind: str, probe: JSON) -> bool:
        """Nothing runs to be probed: the simulated workload is healthy (a test fails a
        probe with `FakeKubernetes.set_probe`)."""
        return True

    async def run_init(self, ctx: PodContext, container: JSON) -> int:
        """An init container's exit code."""
        await asyncio.sleep(self.start_delay)
        return scripted_exit_code(container) or 0

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
        return None


def pod_port_map(pod: Mapping[str, Any]) -> dict[int, int]:
    """The backend's container-port → host-port map from a pod's annotations ({} if none)."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_MAP_ANNOTATION)
    if not raw:
        return {}
    return {int(k): int(v) for k, v in json.loads(raw).items()}
