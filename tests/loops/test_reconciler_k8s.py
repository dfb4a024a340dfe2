"""Reconciler on the real Kubernetes runtime (PodInformer) against the fake
apiserver with its simulated kubelet: pod failure, deletion, IP drift, orphans."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.model import Tenant, TenantStatus
from daemon.ports import Instance
from daemon.reconciler import Reconciler
from tests.k8s_runtime.support import NS, open_runtime
from tests.loops.loop_support import quick_reconciler, stop_tasks
from tests.support.fake_cluster import running_daemon_cluster
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.polling import eventually
from tests.support.records import running_record
from tests.support.records import sample_launch as launch


@pytest.fixture
async def k8s(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    async with running_daemon_cluster(tmp_path, bookmark_interval=0.2) as fake:
        yield fake


@pytest.fixture
async def k8s_runtime(k8s: FakeK8s) -> AsyncIterator[KubernetesRuntime]:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        yield runtime


@pytest.fixture
async def loops(
    k8s_runtime: KubernetesRuntime,
    registry: SqliteRegistry,
    coordination: Coordination,
    metrics: Metrics,
) -> AsyncIterator[Reconciler]:
    """Event handling and the leader's safety net, as a leading replica runs them."""
    reconciler = quick_reconciler(
        registry, k8s_runtime, coordination, metrics, resync_interval_s=0.5, orphan_stop_grace_s=0
    )
    tasks = [
        asyncio.create_task(reconciler.run_events()),
        asyncio.create_task(reconciler.run_safety_net()),
    ]
    try:
        yield reconciler
    finally:
        await stop_tasks(*tasks)


async def running(runtime: KubernetesRuntime, registry: SqliteRegistry, tenant_id: str) -> Instance:
    await runtime.start(launch(tenant_id))
    instance = await runtime.wait_ready(tenant_id, timeout=10)
    await registry.create(running_record(tenant_id, instance, gateway_url=instance.gateway_url))
    return instance


async def status_is(registry: SqliteRegistry, tenant_id: str, status: TenantStatus) -> bool:
    return (await registry.get(tenant_id)).status == status


@pytest.mark.parametrize("how", ["failed", "killed", "crash-looping"])
async def test_pod_loss_reaches_the_registry(
    how: str,
    k8s: FakeK8s,
    k8s_runtime: KubernetesRuntime,
    registry: SqliteRegistry,
    coordination: Coordination,
    metrics: Metrics,
    loops: Reconciler,
) -> None:
    instance = await running(k8s_runtime, registry, "alice")
    await coordination.set_endpoint("alice", instance.webhook_url or "", 60)
    if how == "failed":
        await k8s.server.fail_pod(NS, instance.name, reason="OOMKilled")
    elif how == "crash-looping":  # restartPolicy Always: the kubelet restarts the gateway
        await k8s.server.crash_pod(NS, instance.name, exit_code=1)
    else:
        await k8s.server.kill_pod(NS, instance.name)
    await eventually(
        lambda: status_is(registry, "alice", TenantStatus.IDLE), timeout=10, what="idle"
    )
    record = await registry.get("alice")
    assert record.endpoint is None and record.pod_name is None
    assert metrics.registry.get_sample_value("otm_pod_failure_to_registry_seconds_count") == 1
    # (A Failed pod object stays until the tenant's next start removes it: the
    # runtime reports it as gone, so it is no orphan to the reconciler.)

    assert await coordination.get_endpoint("alice") is None


async def test_ip_drift_updates_registry(
    k8s: FakeK8s,
    k8s_runtime: KubernetesRuntime,
    registry: SqliteRegistry,
    coordination: Coordination,
    loops: Reconciler,
) -> None:
    instance = await running(k8s_runtime, registry, "bob")
    await k8s.server.sandbox_changed(NS, instance.name, new_ip="10.77.0.9")

    async def moved() -> bool:
        # The reconciler writes the registry (the source of truth, whose
        # conditional write decides who wins) and only then the cache, so
        # wait for both rather than reading the cache the moment the registry moved.
        endpoint = (await registry.get("bob")).endpoint
        return (
            endpoint is not None
            and endpoint != instance.webhook_url
            and await coordination.get_endpoint("bob") == endpoint
        )

    await eventually(moved, timeout=10, what="registry and cache follow the new pod IP")
    record = await registry.get("bob")
    assert record.status == TenantStatus.RUNNING
    assert await coordination.get_endpoint("bob") == record.endpoint


async def test_orphan_pod_and_stale_record(
    k8s_runtime: KubernetesRuntime, registry: SqliteRegistry, loops: Reconciler
) -> None:
    await k8s_runtime.start(launch("ghost"))  # a pod for a tenant with no record
    await k8s_runtime.wait_ready("ghost", timeout=10)
    await registry.create(
        Tenant(tenant_id="stale", status=TenantStatus.RUNNING, pod_name="openclaw-stale")
    )

    async def ghost_gone() -> bool:
        return await k8s_runtime.get("ghost") is None

    await eventually(ghost_gone, timeout=10, what="orphan pod stopped")
    await eventually(
        lambda: status_is(registry, "stale", TenantStatus.IDLE), timeout=10, what="stale reset"
    )
