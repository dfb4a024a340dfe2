"""The fake kubelet's probes: started/Ready only once the startup/readiness probes pass,
liveness (and exhausted startup) failures restart the container. With a backend running
real processes the probes are real HTTP requests to them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.k8s.cluster import pod_manifest
from tests.k8s.test_fake_kubelet import (
    NS,
    PATIENCE,
    HttpServerBackend,
    fake_with,
    ready,
    wait_for_pod,
)
from tests.support.polling import eventually

JSON = dict[str, Any]
PROBE_PERIOD_S = 1


def probed_pod(name: str, **probes: JSON) -> JSON:
    pod = pod_manifest(name)
    pod["spec"]["containers"][0].update(ports=[{"name": "http", "containerPort": 8787}], **probes)
    return pod


def http_probe(path: str, **extra: Any) -> JSON:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": PROBE_PERIOD_S, **extra}


def main(pod: JSON) -> JSON:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


async def test_readiness_is_the_real_http_probe_of_the_process(tmp_path: Path) -> None:
    """`python -m http.server` answers / (200) and /nope (404): only the pod probing / is
    Ready; the other runs, started, but never Ready."""
    async with fake_with(tmp_path, pod_backend=HttpServerBackend()) as (_, core):
        created = await core.create_namespaced_pod(
            NS, probed_pod("bad", readinessProbe=http_probe("/nope"))
        )
        good = await core.create_namespaced_pod(
            NS, probed_pod("good", readinessProbe=http_probe("/"))
        )
        await wait_for_pod(core, "good", good.metadata.resource_version, ready)
        # The two processes start independently: wait for "bad" to run, then give its
        # readiness probe two more periods than "good" needed to turn Ready.
        states = await wait_for_pod(
            core, "bad", created.metadata.resource_version, lambda p: main(p).get("started")
        )
        await asyncio.sleep(2 * PROBE_PERIOD_S)
        bad = await core.read_namespaced_pod("bad", NS)
        assert bad.status.phase == "Running"
        (status,) = bad.status.container_statuses
        assert status.started and not status.ready
        assert not any(ready(p) for p in states)


async def test_failing_startup_probe_restarts_the_container(tmp_path: Path) -> None:
    async with fake_with(tmp_path, pod_backend=HttpServerBackend()) as (_, core):
        probe = http_probe("/nope", failureThreshold=2)
        created = await core.create_namespaced_pod(NS, probed_pod("slow", startupProbe=probe))
        states = await wait_for_pod(
            core, "slow", created.metadata.resource_version,
            lambda p: (main(p).get("restartCount") or 0) >= 1,
        )  # fmt: skip
        assert not any(main(p).get("started") for p in states)
        assert not any(ready(p) for p in states)
        assert main(states[-1])["lastState"]["terminated"]["exitCode"] == 137

        async def unhealthy() -> bool:
            events = (await core.list_namespaced_event(NS)).items
            return any(e.reason == "Unhealthy" and "Startup" in e.message for e in events)

        await eventually(unhealthy, timeout=PATIENCE)


async def test_liveness_failures_restart_and_readiness_follows_its_probe(tmp_path: Path) -> None:
    """On the simulated backend probes pass unless a test forces them (set_probe)."""
    async with fake_with(tmp_path) as (k8s, core):
        created = await core.create_namespaced_pod(
            NS,
            probed_pod(
                "flaky",
                readinessProbe=http_probe("/ready", failureThreshold=1),
                livenessProbe=http_probe("/live", failureThreshold=2),
            ),
        )
        rv = (await wait_for_pod(core, "flaky", created.metadata.resource_version, ready))[-1][
            "metadata"
        ]["resourceVersion"]
        k8s.server.set_probe(NS, "flaky", "readinessProbe", False)
        states = await wait_for_pod(core, "flaky", rv, lambda p: not ready(p))
        assert main(states[-1])["started"] and main(states[-1])["restartCount"] == 0
        k8s.server.set_probe(NS, "flaky", "readinessProbe", None)
        rv = (await wait_for_pod(core, "flaky", rv, ready))[-1]["metadata"]["resourceVersion"]
        k8s.server.set_probe(NS, "flaky", "livenessProbe", False)
        states = await wait_for_pod(
            core, "flaky", rv, lambda p: (main(p).get("restartCount") or 0) >= 1
        )
        terminated = main(states[-1])["lastState"]["terminated"]
        assert terminated["exitCode"] == 137 and "liveness" in terminated["message"]
