"""A tenant pod stranded on a lost node stays Terminating (no kubelet finishes it): stop
and the next start must not wait for it for ever, but force-delete that incarnation once
its grace period is over, and create the tenant's pod again."""

from __future__ import annotations

from kubernetes_asyncio import client

from daemon.kube.client import call_json
from tests.k8s_runtime.support import NS, api_pods, open_runtime
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.records import sample_launch as launch

READY_TIMEOUT_S = 20.0


async def _running_then_node_lost(k8s: FakeK8s, runtime, tenant_id: str) -> str:  # type: ignore[no-untyped-def]
    await runtime.start(launch(tenant_id))
    await runtime.wait_ready(tenant_id, READY_TIMEOUT_S)
    (pod,) = await api_pods(runtime, f"otm/tenant={tenant_id}")
    await k8s.server.lose_node()
    return str(pod["metadata"]["uid"])


async def test_stop_forces_a_pod_stranded_on_a_lost_node(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await _running_then_node_lost(k8s, runtime, "mia")
        await runtime.stop("mia", grace_s=1)
        assert await api_pods(runtime, "otm/tenant=mia") == []


async def test_start_replaces_a_pod_stranded_on_a_lost_node(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        old_uid = await _running_then_node_lost(k8s, runtime, "noa")
        # Deleted gracefully (e.g. by a replica that died before it finished the stop).
        await call_json(
            runtime.core.delete_namespaced_pod,
            "noa",
            NS,
            body=client.V1DeleteOptions(grace_period_seconds=1),
        )
        await runtime.informer.wait_for(
            lambda cache: True if cache["noa"]["metadata"].get("deletionTimestamp") else None, 5
        )
        await runtime.start(launch("noa"))
        (pod,) = await api_pods(runtime, "otm/tenant=noa")
        assert pod["metadata"]["uid"] != old_uid
        assert not pod["metadata"].get("deletionTimestamp")
    # The lost node's Node object is still there: the force-delete did not need it gone.
    # (Listed as the admin: the daemon may only `get` a Node by name.)
    async with k8s.api_client() as admin:
        nodes = await call_json(client.CoreV1Api(admin).list_node)
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["fake-node"]
