"""The kubelet's probes: startupProbe, readinessProbe, livenessProbe of a pod's containers.

Once the backend's `start` returned, the kubelet probes as a real one does:
* until the startupProbe passes the container is not `started` (and not Ready);
  `failureThreshold` consecutive failures restart it;
* then Ready follows the readinessProbe (`failureThreshold` failures → not Ready, one
  success → Ready); without one, the backend's readiness (`PodStarted.ready`,
  `ctx.set_ready`) decides, as before;
* `failureThreshold` consecutive livenessProbe failures restart the container (exit code
  137, event Unhealthy), or fail the pod under `restartPolicy: Never`.

A probe is evaluated by the backend's `probe(ctx, container, kind, probe) -> bool` when it
has one (the simulated backend: its workload is healthy), else for real: `httpGet` is a GET
to the pod IP at the port (through the backend's port map), 200-399 passes; `tcpSocket`
connects; `exec`/`grpc` fail (no container to run them in). A test can force a verdict with
`FakeKubernetes.set_probe(ns, name, kind, passing)`. Periods and timeouts are scaled by
`KubeletConfig.probe_time_scale` (a 10 s period is 0.5 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp

from . import podstatus
from .backend import PORT_MAP_ANNOTATION
from .resources import PODS, ResourceType

if TYPE_CHECKING:
    from .kubelet import Kubelet, PodRuntime

JSON = dict[str, Any]
PROBE_KINDS = ("startupProbe", "readinessProbe", "livenessProbe")
MIN_PERIOD_S = 0.02
MIN_TIMEOUT_S = 1.0  # a loopback request in a loaded test run can take longer than 50 ms


def probed_containers(pod: JSON) -> list[JSON]:
    return [
        c
        for c in (pod.get("spec") or {}).get("containers") or []
        if any(k in c for k in PROBE_KINDS)
    ]


def _port(container: JSON, port: Any) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"no container port named {port!r}")


def _mapped(pod: JSON, port: int) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_MAP_ANNOTATION)
    return int(json.loads(raw).get(str(port), port)) if raw else port


async def _real_probe(pod: JSON, container: JSON, probe: JSON, timeout: float) -> bool:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return False
    try:
        if "httpGet" in probe:
            action = probe["httpGet"]
            port = _mapped(pod, _port(container, action.get("port")))
            host = action.get("host") or ip
            url = f"{action.get('scheme', 'HTTP').lower()}://{host}:{port}{action.get('path', '/')}"
            client_timeout = aiohttp.ClientTimeout(total=timeout)
            async with (
                aiohttp.ClientSession(timeout=client_timeout) as session,
                session.get(url, allow_redirects=False) as resp,
            ):
                return 200 <= resp.status < 400
        if "tcpSocket" in probe:
            port = _mapped(pod, _port(container, probe["tcpSocket"].get("port")))
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
    except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return False  # exec / grpc: nothing here can run them


class PodProber:
    """Probes one started pod until cancelled (or until it restarts the container)."""

    def __init__(self, kubelet: Kubelet, runtime: PodRuntime) -> None:
        self.kubelet = kubelet
        self.runtime = runtime
        self.scale = kubelet.config.probe_time_scale

    async def check(self, container: JSON, kind: str) -> bool:
        forced = self.runtime.probe_overrides.get(kind)
        if forced is not None:
            return forced
        probe = container[kind]
        backend_probe = getattr(self.kubelet.backend, "probe", None)
        if backend_probe is not None:
            return bool(await backend_probe(self.runtime.ctx, container, kind, probe))
        pod = self.kubelet.lookup(*_pod_key(self.runtime))
        timeout = max(float(probe.get("timeoutSeconds", 1)) * self.scale, MIN_TIMEOUT_S)
        return pod is not None and await _real_probe(pod, container, probe, timeout)

    def _period(self, probe: JSON) -> float:
        return max(float(probe.get("periodSeconds", 10)) * self.scale, MIN_PERIOD_S)

    async def run(self, container: JSON) -> None:
        kubelet, runtime, name = self.kubelet, self.runtime, container["name"]
        if "startupProbe" in container:
            probe, failures = container["startupProbe"], 0
            while not await self.check(container, "startupProbe"):
                failures += 1
                if failures >= int(probe.get("failureThreshold", 3)):
                    self._unhealthy("Startup", name)
                    return
                await asyncio.sleep(self._period(probe))
        kubelet.write(runtime, lambda p: podstatus.mark_started(p, name))
        readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
        ready_failures = live_failures = 0
        ready: bool | None = None
        while True:
            if readiness is not None:
                if await self.check(container, "readinessProbe"):
                    ready_failures = 0
                    verdict = True
                else:
                    ready_failures += 1
                    verdict = ready is True and ready_failures < int(
                        readiness.get("failureThreshold", 3)
                    )
                if verdict != ready:
                    ready = verdict
                    self._show_ready(verdict)
            if liveness is not None:
                if await self.check(container, "livenessProbe"):
                    live_failures = 0
                else:
                    live_failures += 1
                    if live_failures >= int(liveness.get("failureThreshold", 3)):
                        self._unhealthy("Liveness", name)
                        return
            periods = [self._period(p) for p in (readiness, liveness) if p is not None]
            if not periods:
                return
            await asyncio.sleep(min(periods))

    def _show_ready(self, ready: bool) -> None:
        self.kubelet.write(self.runtime, lambda p: podstatus.mark_ready(p, ready))

    def _unhealthy(self, which: str, container: str) -> None:
        message = f"{which} probe failed"
        self.kubelet.record_event(self.runtime, "Unhealthy", message, warning=True)
        self.kubelet.kill_container(
            self.runtime, f"Container {container} failed {which.lower()} probe, will be restarted"
        )


def _pod_key(runtime: PodRuntime) -> tuple[ResourceType, str, str]:
    return PODS, runtime.ctx.namespace, runtime.ctx.name


async def probe_pod(kubelet: Kubelet, runtime: PodRuntime) -> None:
    """Run every probed container's probes (returns when none is left to probe)."""
    prober = PodProber(kubelet, runtime)
    await asyncio.gather(*(prober.run(c) for c in probed_containers(runtime.ctx.pod)))
