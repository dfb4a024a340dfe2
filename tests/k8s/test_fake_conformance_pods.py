"""Conformance: leader election over Leases, and pods run by a kubelet (transitions,
graceful stop, failure, IP drift, logs). See test_fake_conformance.py."""

# kubernetes_asyncio annotates request bodies as models (V1Pod, ...), but takes plain dicts,
# which is how the daemon builds manifests; so dict bodies are not type errors here.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from tests.k8s.cluster import (
    JSON,
    Cluster,
    expect_status,
    pod_manifest,
    unscheduled_pod,
    watch_events,
)

# Leader election ---------------------------------------------------------------------------


async def test_leader_election_fails_over_between_two_candidates(cluster: Cluster) -> None:
    """kubernetes_asyncio's stock LeaderElection + LeaseLock: `a` leads while it renews;
    when `a` stops renewing (a crash, no release), `b` takes the lease after it expires."""
    leading = {"a": asyncio.Event(), "b": asyncio.Event()}

    def candidate(identity: str) -> asyncio.Task[None]:
        lock = LeaseLock("otm-conformance-leader", cluster.namespace, identity, cluster.api)

        async def on_started() -> None:
            leading[identity].set()

        async def on_stopped() -> None:
            leading[identity].clear()

        config = electionconfig.Config(
            lock,
            lease_duration=3,
            renew_deadline=2,
            retry_period=1,
            onstarted_leading=on_started,
            onstopped_leading=on_stopped,
        )
        election = leaderelection.LeaderElection(config)
        return asyncio.create_task(election.run(), name=f"conformance-election-{identity}")

    tasks = [candidate("a")]
    try:
        await asyncio.wait_for(leading["a"].wait(), cluster.patience + 5)
        tasks.append(candidate("b"))
        await asyncio.sleep(2)  # b polls twice while a renews: it must stay a follower
        assert not leading["b"].is_set()
        tasks[0].cancel()
        await asyncio.wait_for(leading["b"].wait(), cluster.patience + 10)
        lease = await cluster.coordination.read_namespaced_lease(
            "otm-conformance-leader", cluster.namespace
        )
        assert lease.spec.holder_identity == "b"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# Pods run by a kubelet ---------------------------------------------------------------------


def _phase_and_ready(event: JSON) -> tuple[str, bool]:
    status = event["raw_object"].get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase", ""), ready


def _running_and_ready(events: list[JSON]) -> bool:
    return _phase_and_ready(events[-1]) == ("Running", True)


async def _running_pod(cluster: Cluster, name: str) -> JSON:
    """Create a pod and wait (through a watch) until it is Running and Ready."""
    created = await cluster.core.create_namespaced_pod(cluster.namespace, pod_manifest(name))
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        field_selector=f"metadata.name={name}",
        resource_version=created.metadata.resource_version,
        until=_running_and_ready,
        patience=cluster.patience if cluster.fake else 120.0,
    )
    pod: JSON = events[-1]["raw_object"]
    return pod


async def test_kubelet_schedules_and_runs_a_pod(cluster: Cluster) -> None:
    """A new pod is bound to a node (spec.nodeName, PodScheduled), then goes Pending →
    Running with a podIP and Ready=True; its phase never goes backwards."""
    created = await cluster.core.create_namespaced_pod(cluster.namespace, pod_manifest("run"))
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=created.metadata.resource_version,
        until=_running_and_ready,
        patience=cluster.patience if cluster.fake else 120.0,
    )
    phases = [_phase_and_ready(e)[0] for e in events]
    assert set(phases) <= {"Pending", "Running"}
    assert phases == sorted(phases, key=["Pending", "Running"].index)
    pod = events[-1]["raw_object"]
    assert pod["spec"]["nodeName"]
    assert pod["status"]["podIP"] and pod["status"]["hostIP"]
    condition_types = {c["type"] for c in pod["status"]["conditions"]}
    assert {"PodScheduled", "Initialized", "ContainersReady", "Ready"} <= condition_types
    [container] = pod["status"]["containerStatuses"]
    assert container["ready"] is True and "running" in container["state"]


async def test_graceful_delete_of_a_running_pod_is_finished_by_the_kubelet(
    cluster: Cluster,
) -> None:
    """Deleting a running pod: MODIFIED with deletionTimestamp, the kubelet stops the
    containers, then DELETED, well before the 30 s grace period runs out."""
    pod = await _running_pod(cluster, "stop-me")
    await cluster.core.delete_namespaced_pod("stop-me", cluster.namespace)
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=pod["metadata"]["resourceVersion"],
        until=lambda evs: evs[-1]["type"] == "DELETED",
        patience=cluster.patience if cluster.fake else 60.0,
    )
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["raw_object"]["metadata"]["deletionTimestamp"]


@pytest.mark.fake_only
async def test_pod_failure_is_seen_through_a_watch(cluster: Cluster) -> None:
    """A container that dies makes the pod Failed with a terminated container status
    (exit code and reason), Ready=False: a watcher sees it as one MODIFIED event."""
    fake = cluster.require_fake()
    pod = await _running_pod(cluster, "doomed")
    await fake.fail_pod(cluster.namespace, "doomed", exit_code=137, reason="OOMKilled")
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=pod["metadata"]["resourceVersion"],
        until=lambda evs: _phase_and_ready(evs[-1])[0] == "Failed",
        patience=cluster.patience,
    )
    assert _phase_and_ready(events[-1]) == ("Failed", False)
    [container] = events[-1]["raw_object"]["status"]["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


@pytest.mark.fake_only
async def test_ip_drift_is_seen_through_a_watch(cluster: Cluster) -> None:
    """Kata SandboxChanged: the pod turns not-Ready, restarts its containers and comes back
    Ready with a different podIP; a SandboxChanged Event is recorded."""
    fake = cluster.require_fake()
    pod = await _running_pod(cluster, "drifter")
    old_ip = pod["status"]["podIP"]
    await fake.sandbox_changed(cluster.namespace, "drifter")
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=pod["metadata"]["resourceVersion"],
        until=_running_and_ready,
        patience=cluster.patience,
    )
    assert _phase_and_ready(events[0]) == ("Running", False)
    new_status = events[-1]["raw_object"]["status"]
    assert new_status["podIP"] != old_ip
    assert new_status["containerStatuses"][0]["restartCount"] == 1
    recorded = await cluster.core.list_namespaced_event(
        cluster.namespace, field_selector="involvedObject.name=drifter"
    )
    assert [e.reason for e in recorded.items] == ["SandboxChanged"]


@pytest.mark.fake_only
async def test_read_pod_log(cluster: Cluster) -> None:
    """`pods/log` returns the container's output; `tailLines` keeps the last lines; a pod
    whose container has not started answers 400."""
    fake = cluster.require_fake()
    await _running_pod(cluster, "talker")
    fake.append_pod_log(cluster.namespace, "talker", "one\ntwo\nthree\n")
    text = await cluster.core.read_namespaced_pod_log("talker", cluster.namespace)
    assert text == "one\ntwo\nthree\n"
    tail = await cluster.core.read_namespaced_pod_log("talker", cluster.namespace, tail_lines=1)
    assert tail == "three\n"
    await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("waiting"))
    await expect_status(cluster.core.read_namespaced_pod_log("waiting", cluster.namespace), 400)


@pytest.mark.fake_only
async def test_follow_pod_log_streams_until_the_container_ends(cluster: Cluster) -> None:
    """`follow=true` streams existing then new output, and ends when the container stops."""
    fake = cluster.require_fake()
    await _running_pod(cluster, "streamer")
    fake.append_pod_log(cluster.namespace, "streamer", "first\n")
    lines = []
    stream = watch.Watch()
    try:
        async with asyncio.timeout(cluster.patience):
            async for line in stream.stream(
                cluster.core.read_namespaced_pod_log, "streamer", cluster.namespace
            ):
                lines.append(line)
                if line == "first\n":
                    fake.append_pod_log(cluster.namespace, "streamer", "second\n")
                elif line == "second\n":
                    await fake.fail_pod(cluster.namespace, "streamer")
    finally:
        await stream.close()
    assert lines == ["first\n", "second\n"]
