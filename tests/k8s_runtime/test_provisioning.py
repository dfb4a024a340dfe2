"""A pod the scheduler cannot place yet (PodScheduled=False, Unschedulable: Karpenter is
launching a node) is no failed start: wait_ready waits on past its timeout, up to the
provisioning budget, and then says the cluster lacked capacity (CapacityUnavailable)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.kube.client import call_json
from daemon.kube.pod_status import unschedulable_reason
from daemon.ports import CapacityUnavailable, InstancePhase
from tests.k8s_runtime.support import NS, open_runtime
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s import KubeletConfig
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.polling import eventually
from tests.support.records import sample_launch as launch

NO_CAPACITY = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available"


@pytest.fixture
async def unscheduled(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    """No scheduler: pods stay unbound until the test binds them (a node came up)."""
    async with running_otm_k8s(tmp_path, kubelet=KubeletConfig(schedule=False)) as k8s:
        yield k8s


async def _unschedulable(k8s: FakeK8s, runtime: KubernetesRuntime, tenant_id: str) -> None:
    await runtime.start(launch(tenant_id))
    k8s.server.mark_unschedulable(NS, tenant_id, NO_CAPACITY)
    await runtime.informer.wait_for(
        lambda cache: True if unschedulable_reason(cache.get(tenant_id) or {}) else None, 5
    )


async def test_wait_ready_outlasts_its_timeout_while_capacity_is_provisioned(
    unscheduled: FakeK8s,
) -> None:
    async with open_runtime(unscheduled.kubeconfig_path) as runtime:
        runtime.provisioning_timeout_s = 60.0
        await _unschedulable(unscheduled, runtime, "olga")
        waiting = asyncio.create_task(runtime.wait_ready("olga", timeout=0.2))
        (pending,) = await runtime.list()
        assert pending.phase is InstancePhase.PENDING and pending.reason == NO_CAPACITY
        await asyncio.sleep(0.5)  # past the wait's own timeout: still waiting
        assert not waiting.done()
        binding = {"metadata": {"name": "olga"}, "target": {"kind": "Node", "name": "fake-node"}}
        await call_json(runtime.core.create_namespaced_pod_binding, "olga", NS, binding)
        ready = await asyncio.wait_for(waiting, 20)
        assert ready.phase is InstancePhase.READY


async def test_no_node_within_the_budget_is_capacity_unavailable(unscheduled: FakeK8s) -> None:
    async with open_runtime(unscheduled.kubeconfig_path) as runtime:
        runtime.provisioning_timeout_s = 0.5
        await _unschedulable(unscheduled, runtime, "pia")
        with pytest.raises(CapacityUnavailable, match="Insufficient cpu"):
            await runtime.wait_ready("pia", timeout=0.2)


async def test_a_slow_pod_with_a_node_still_times_out(k8s: FakeK8s) -> None:
    """The budget is for pods without a node only: a bound pod that is slow is a
    (counted) timeout, as before."""
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        runtime.provisioning_timeout_s = 60.0
        await runtime.start(launch("quin"))
        await eventually(lambda: "quin" in runtime.informer.cache, timeout=5)
        with pytest.raises(TimeoutError):
            await runtime.wait_ready("quin", timeout=0.0001)
