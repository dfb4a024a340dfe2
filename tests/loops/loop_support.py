"""Helpers of the loop tests (culler, leader, reconciler): plain functions, imported by the
test modules and the tier's conftest (fixtures stay in conftest.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination
from daemon.lifecycle.culler import Culler
from daemon.metrics import Metrics
from daemon.model import TenantStatus, utcnow
from daemon.msgpath.wake import WakeManager
from daemon.ports import AgentLaunch, Registry, Runtime
from daemon.reconciler import Reconciler
from tests.loops.memory_runtime import MemoryRuntime
from tests.support.records import running_record

# The loop tests' clock: resyncs and orphan graces short enough for a test, stale wakes never.
QUICK_RECONCILER = {"resync_interval_s": 0.3, "wake_stale_after_s": 300.0, "orphan_grace_s": 0.2}


def quick_reconciler(
    registry: Registry,
    runtime: Runtime,
    coordination: Coordination,
    metrics: Metrics,
    **timings: float,
) -> Reconciler:
    """A reconciler with the loop tests' short timings (a test may override any)."""
    return Reconciler(
        registry=registry,
        runtime=runtime,
        coordination=coordination,
        metrics=metrics,
        **{**QUICK_RECONCILER, **timings},
    )


async def stop_tasks(*tasks: asyncio.Task[object], timeout: float = 5.0) -> None:
    """Cancel and wait (bounded): a loop that ignores cancellation fails the test."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    assert not pending, f"tasks ignored cancellation: {pending}"


async def start_running(
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
    tid: str,
    idle_timeout_s: int | None,
    *,
    idle_for_s: float = 0.0,
) -> None:
    inst = await runtime.start(
        AgentLaunch(tid, bot_token="", webhook_secret="s", gateway_token="g", hooks_token="h")
    )
    await registry.create(
        running_record(
            tid,
            inst,
            idle_timeout_s=idle_timeout_s,
            last_active_at=utcnow() - timedelta(seconds=idle_for_s),
        )
    )
    await coordination.set_endpoint(tid, inst.webhook_url or "", 600)


def make_culler(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination, wake: WakeManager
) -> Culler:
    # A long safety-net interval: everything the tests see must be deadline/event driven.
    return Culler(
        registry=registry,
        runtime=runtime,
        coordination=coordination,
        sleep=wake.sleep,
        max_interval_s=60.0,
    )


async def status_of(registry: SqliteRegistry, tid: str) -> TenantStatus:
    return (await registry.get(tid)).status


async def is_idle(registry: SqliteRegistry, tid: str) -> bool:
    return await status_of(registry, tid) == TenantStatus.IDLE
