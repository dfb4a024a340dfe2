"""Conformance: what a kubelet does when containers cannot run, and what admission refuses.

Restart policy and back-off (CrashLoopBackOff), image pull failures, missing configuration,
failing init containers, pods on a lost node, pod admission (ServiceAccount, PriorityClass,
RuntimeClass) and MicroTime decoding. Runs unchanged against a real cluster
(OTM_CONFORMANCE_KUBECONFIG); the tests that need the fake's control hooks skip there.
"""

# kubernetes_asyncio annotates request bodies as models but takes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.k8s.cluster import JSON, Cluster, expect_status, pod_manifest, watch_events
from tests.support.fake_k8s import NODES, PODS
from tests.support.polling import eventually

# A small image with a shell, for containers that run `sh -c "exit N"` (the fake's simulated
# backend gives such a container exit code N without running anything).
SHELL_IMAGE = "busybox:1.36"
# `.invalid` never resolves (RFC 2606): no node anywhere can pull this.
UNPULLABLE_IMAGE = "registry.invalid/otm/never:1"


def exiting(code: int) -> JSON:
    return {"image": SHELL_IMAGE, "command": ["sh", "-c", f"exit {code}"]}


def crashing_pod(name: str, code: int = 1, **spec: Any) -> JSON:
    pod = pod_manifest(name, **spec)
    pod["spec"]["containers"][0].update(exiting(code))
    return pod


async def pod_until(cluster: Cluster, name: str, until: Callable[[JSON], bool]) -> list[JSON]:
    """The pod's states (from a watch) until one satisfies `until`."""
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        field_selector=f"metadata.name={name}",
        until=lambda evs: until(evs[-1]["raw_object"]),
        patience=cluster.patience if cluster.fake else 180.0,
    )
    return [e["raw_object"] for e in events]


def main_status(pod: JSON) -> JSON:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def waiting_reason(status: JSON) -> str | None:
    return ((status.get("state") or {}).get("waiting") or {}).get("reason")


# Restart policy --------------------------------------------------------------------------


async def test_exiting_container_under_always_crash_loops(cluster: Cluster) -> None:
    """restartPolicy Always: an exiting container is restarted (restartCount grows,
    lastState keeps the exit), then waits in CrashLoopBackOff; the pod stays Running."""
    await cluster.core.create_namespaced_pod(cluster.namespace, crashing_pod("looper", 3))
    states = await pod_until(
        cluster,
        "looper",
        lambda p: (
            waiting_reason(main_status(p)) == "CrashLoopBackOff"
            and main_status(p).get("restartCount", 0) >= 1
        ),
    )
    status, pod = main_status(states[-1]), states[-1]
    assert pod["status"]["phase"] == "Running"
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off" in status["state"]["waiting"]["message"]
    assert not status["ready"]
    counts = [main_status(p).get("restartCount", 0) for p in states]
    assert counts == sorted(counts)  # it never goes back


async def test_exiting_container_under_never_fails_the_pod(cluster: Cluster) -> None:
    await cluster.core.create_namespaced_pod(
        cluster.namespace, crashing_pod("once", 2, restartPolicy="Never")
    )
    states = await pod_until(cluster, "once", lambda p: p["status"].get("phase") == "Failed")
    terminated = main_status(states[-1])["state"]["terminated"]
    assert terminated["exitCode"] == 2 and main_status(states[-1])["restartCount"] == 0


async def test_failing_init_container_crash_loops_and_blocks_the_pod(cluster: Cluster) -> None:
    """A failing init container is retried with back-off (Init:CrashLoopBackOff); the
    main containers never start and the pod stays Pending."""
    pod = pod_manifest("init-loop")
    pod["spec"]["initContainers"] = [{"name": "setup", **exiting(1)}]
    await cluster.core.create_namespaced_pod(cluster.namespace, pod)
    states = await pod_until(
        cluster,
        "init-loop",
        lambda p: (
            waiting_reason((p["status"].get("initContainerStatuses") or [{}])[0])
            == "CrashLoopBackOff"
        ),
    )
    last = states[-1]["status"]
    assert last["phase"] == "Pending"
    assert last["initContainerStatuses"][0]["restartCount"] >= 1
    assert all("running" not in (main_status(p).get("state") or {}) for p in states)
    initialized = next(c for c in last["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"


async def test_failing_init_container_under_never_fails_the_pod(cluster: Cluster) -> None:
    pod = pod_manifest("init-once", restartPolicy="Never")
    pod["spec"]["initContainers"] = [{"name": "setup", **exiting(1)}]
    await cluster.core.create_namespaced_pod(cluster.namespace, pod)
    states = await pod_until(cluster, "init-once", lambda p: p["status"].get("phase") == "Failed")
    init = states[-1]["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 1


# Images and configuration ----------------------------------------------------------------


async def test_unpullable_image_goes_err_image_pull_then_image_pull_back_off(
    cluster: Cluster,
) -> None:
    pod = pod_manifest("nopull")
    pod["spec"]["containers"][0]["image"] = UNPULLABLE_IMAGE
    await cluster.core.create_namespaced_pod(cluster.namespace, pod)
    states = await pod_until(
        cluster, "nopull", lambda p: waiting_reason(main_status(p)) == "ImagePullBackOff"
    )
    reasons = [waiting_reason(main_status(p)) for p in states]
    assert "ErrImagePull" in reasons
    assert reasons.index("ErrImagePull") < reasons.index("ImagePullBackOff")
    assert states[-1]["status"]["phase"] == "Pending"


async def test_missing_secret_or_key_is_create_container_config_error(cluster: Cluster) -> None:
    """env from a missing Secret, or a missing key of an existing one: the container waits
    in CreateContainerConfigError with the kubelet's message; creating it lets it start."""
    ns = cluster.namespace
    ref = {"secretKeyRef": {"name": "later", "key": "token"}}
    pod = pod_manifest("noconf")
    pod["spec"]["containers"][0]["env"] = [{"name": "TOKEN", "valueFrom": ref}]
    await cluster.core.create_namespaced_pod(ns, pod)
    states = await pod_until(
        cluster, "noconf", lambda p: waiting_reason(main_status(p)) == "CreateContainerConfigError"
    )
    assert main_status(states[-1])["state"]["waiting"]["message"] == 'secret "later" not found'

    keyless = pod_manifest("nokey")
    keyless["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "partial"}}]
    keyless["spec"]["containers"][0]["env"] = [
        {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "partial", "key": "absent"}}}
    ]
    await cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"name": "partial"}, "data": {"present": "1"}}
    )
    await cluster.core.create_namespaced_pod(ns, keyless)
    states = await pod_until(
        cluster, "nokey", lambda p: waiting_reason(main_status(p)) == "CreateContainerConfigError"
    )
    message = main_status(states[-1])["state"]["waiting"]["message"]
    assert message == f"couldn't find key absent in ConfigMap {ns}/partial"

    await cluster.core.create_namespaced_secret(
        ns, {"metadata": {"name": "later"}, "stringData": {"token": "t"}}
    )
    await pod_until(cluster, "noconf", lambda p: p["status"].get("phase") == "Running")


# Admission -------------------------------------------------------------------------------


async def test_pod_naming_missing_classes_or_account_is_forbidden(cluster: Cluster) -> None:
    ns, core = cluster.namespace, cluster.core
    cases = [
        ({"serviceAccountName": "ghost"},
         f'error looking up service account {ns}/ghost: serviceaccount "ghost" not found'),
        ({"priorityClassName": "otm-absent"}, "no PriorityClass with name otm-absent was found"),
        ({"runtimeClassName": "otm-absent"}, 'pod rejected: RuntimeClass "otm-absent" not found'),
    ]  # fmt: skip
    for spec, why in cases:
        body = await expect_status(
            core.create_namespaced_pod(ns, pod_manifest("refused", **spec)), 403
        )
        assert body["reason"] == "Forbidden"
        assert body["message"] == f'pods "refused" is forbidden: {why}'
    await expect_status(core.read_namespaced_pod("refused", ns), 404)


async def test_pod_admission_defaults_account_and_priority(cluster: Cluster) -> None:
    """The namespace's `default` ServiceAccount exists and is filled in; a PriorityClass
    that exists sets spec.priority."""
    ns = cluster.namespace
    await cluster.core.read_namespaced_service_account("default", ns)
    created = await cluster.core.create_namespaced_pod(ns, pod_manifest("plain"))
    assert created.spec.service_account_name == "default"
    scheduling = client.SchedulingV1Api(cluster.api)
    name = f"{ns}-prio"
    await scheduling.create_priority_class({"metadata": {"name": name}, "value": 1234})
    try:
        created = await cluster.core.create_namespaced_pod(
            ns, pod_manifest("prioritized", priorityClassName=name)
        )
        assert created.spec.priority == 1234
    finally:
        await scheduling.delete_priority_class(name)


# MicroTime -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123Z", "2026-01-02T03:04:05.123456789Z",
     "2026-01-02 03:04:05.123456Z"],
)  # fmt: skip
async def test_lease_times_must_be_micro_times(cluster: Cluster, stamp: str) -> None:
    """Lease acquireTime/renewTime are MicroTime: RFC 3339 with exactly six fractional
    digits; anything else fails to decode (400)."""
    lease = {"metadata": {"name": "micro"}, "spec": {"holderIdentity": "a", "renewTime": stamp}}
    body = await expect_status(
        cluster.coordination.create_namespaced_lease(cluster.namespace, lease), 400
    )
    assert body["reason"] == "BadRequest"
    lease["spec"]["renewTime"] = "2026-01-02T03:04:05.123456Z"
    created = await cluster.coordination.create_namespaced_lease(cluster.namespace, lease)
    assert created.spec.renew_time is not None


# Lost node -------------------------------------------------------------------------------


@pytest.mark.fake_only
async def test_pod_on_a_lost_node_stays_terminating_until_forced_or_node_gone(
    cluster: Cluster,
) -> None:
    """A lost node's pods keep their deletionTimestamp past the grace period (no kubelet
    finishes them); a grace-0 delete removes one; deleting the Node removes the rest."""
    fake, ns, core = cluster.require_fake(), cluster.namespace, cluster.core
    for name in ("stuck", "orphan"):
        await core.create_namespaced_pod(ns, pod_manifest(name, terminationGracePeriodSeconds=1))
        await pod_until(cluster, name, lambda p: p["status"].get("phase") == "Running")
    node = await fake.lose_node()
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "Unknown"
    await pod_until(
        cluster,
        "stuck",
        lambda p: any(
            c["type"] == "Ready" and c["status"] == "False" for c in p["status"]["conditions"]
        ),
    )
    for name in ("stuck", "orphan"):
        await core.delete_namespaced_pod(name, ns)
    await asyncio.sleep(1.5)  # past the grace period: a healthy kubelet would be done
    stuck = await core.read_namespaced_pod("stuck", ns)
    assert stuck.metadata.deletion_timestamp is not None
    await core.delete_namespaced_pod("stuck", ns, grace_period_seconds=0)
    await expect_status(core.read_namespaced_pod("stuck", ns), 404)
    assert fake.store.peek(PODS, ns, "orphan") is not None
    await client.CoreV1Api(cluster.api).delete_node(node["metadata"]["name"])
    await eventually(lambda: fake.store.peek(PODS, ns, "orphan") is None, timeout=5)
    assert fake.store.peek(NODES, None, node["metadata"]["name"]) is None
