"""A wake the runtime gives up on for lack of cluster capacity (its pod found no node
within the provisioning budget) is not counted as a failed attempt; any other failed
start is, with the runtime's reason recorded for the operator."""

from __future__ import annotations

import pytest

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import Tenant, TenantStatus
from daemon.msgpath.wake import WakeFailed, WakeManager
from daemon.ports import AgentFailed, CapacityUnavailable, Instance
from tests.loops.memory_runtime import MemoryRuntime


class RefusingRuntime(MemoryRuntime):
    """Starts instances, then fails their readiness wait with ``error``."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception = AgentFailed("unset")

    async def wait_ready(self, tenant_id: str, timeout: float) -> Instance:
        raise self.error


@pytest.fixture
def runtime() -> MemoryRuntime:
    return RefusingRuntime()


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (CapacityUnavailable("no node for the pod of t1: 0/3 nodes are available"), 0),
        (AgentFailed("pod t1 failed: gateway: CrashLoopBackOff (restarted 2x)"), 1),
    ],
)
async def test_capacity_shortage_is_not_a_failed_attempt(
    error: Exception,
    attempts: int,
    runtime: RefusingRuntime,
    registry: SqliteRegistry,
    wake: WakeManager,
) -> None:
    runtime.error = error
    await registry.create(
        Tenant(tenant_id="t1", status=TenantStatus.IDLE, bot_token="1:t", webhook_secret="w")
    )
    with pytest.raises(WakeFailed):
        await wake.wake("t1")
    record = await registry.get("t1")
    assert record.status == TenantStatus.IDLE
    assert record.wake_attempts == attempts
    assert str(error) in record.status_reason
