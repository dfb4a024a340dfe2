"""Idle culler against a real SQLite registry and real Redis, with the in-memory runtime."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination, LiveConfig
from daemon.lifecycle.culler import Culler, idle_deadline
from daemon.model import Tenant, TenantStatus, utcnow
from daemon.msgpath.wake import WakeManager
from daemon.ports import AgentActivity
from tests.loops.loop_support import is_idle, make_culler, start_running, status_of, stop_tasks
from tests.loops.memory_runtime import MemoryRuntime
from tests.support.polling import eventually


async def has_event(coordination: Coordination, tid: str, kind: str) -> bool:
    return kind in [e["kind"] for e in await coordination.event_log(tid)]


def test_deadline_uses_tenant_timeout_else_live_default() -> None:
    now = utcnow()
    config = LiveConfig(default_idle_timeout_s=600)
    own = Tenant(tenant_id="a", idle_timeout_s=5, last_active_at=now)
    default = Tenant(tenant_id="b", last_active_at=now)
    assert idle_deadline(own, config) == now + timedelta(seconds=5)
    assert idle_deadline(default, config) == now + timedelta(seconds=600)


async def test_idle_tenant_is_slept_and_others_are_kept(
    culler: Culler, registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    await start_running(registry, runtime, coordination, "short", idle_timeout_s=1)
    await start_running(registry, runtime, coordination, "long", idle_timeout_s=3600)
    await start_running(registry, runtime, coordination, "default", idle_timeout_s=None)
    culler.kick()  # tenants appeared after the culler's first listing
    await eventually(lambda: is_idle(registry, "short"), timeout=6, what="short culled")
    await eventually(lambda: has_event(coordination, "short", "culled"), what="culled event")
    assert "short" not in runtime.instances
    assert [tid for tid, _ in runtime.stopped] == ["short"]
    assert await coordination.get_endpoint("short") is None
    # The 1 s tenant went; the 1 h and the (600 s) default ones stay.
    assert await status_of(registry, "long") == TenantStatus.RUNNING
    assert await status_of(registry, "default") == TenantStatus.RUNNING
    assert set(culler.deadlines) == {"long", "default"}


async def test_busy_agent_extends_its_deadline(
    culler: Culler, registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    runtime.activities["busy"] = AgentActivity(busy=True, pending_turns=1, last_turn_at=None)
    await start_running(registry, runtime, coordination, "busy", idle_timeout_s=1, idle_for_s=5)
    before = (await registry.get("busy")).last_active_at
    culler.kick("busy")

    async def touched() -> bool:
        return (await registry.get("busy")).last_active_at > before

    await eventually(touched, timeout=5, what="deadline extended")
    assert await status_of(registry, "busy") == TenantStatus.RUNNING
    assert runtime.stopped == []
    # The turn finishes: the next deadline sleeps it.
    runtime.activities["busy"] = AgentActivity(busy=False, pending_turns=0, last_turn_at=None)
    await eventually(lambda: is_idle(registry, "busy"), timeout=6, what="culled after the turn")


async def test_recent_turn_counts_as_activity(
    culler: Culler, registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    # Last message 10 s ago, but the agent finished a turn just now: not idle yet.
    runtime.activities["t1"] = AgentActivity(busy=False, pending_turns=0, last_turn_at=utcnow())
    await start_running(registry, runtime, coordination, "t1", idle_timeout_s=2, idle_for_s=10)
    culler.kick("t1")

    async def moved_forward() -> bool:
        return (await registry.get("t1")).last_active_at > utcnow() - timedelta(seconds=5)

    await eventually(moved_forward, timeout=5, what="last turn recorded as activity")
    assert await status_of(registry, "t1") == TenantStatus.RUNNING
    await eventually(lambda: is_idle(registry, "t1"), timeout=6, what="culled 2 s after turn")


async def test_tenant_event_schedules_a_new_deadline(
    culler: Culler, registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    """No fixed tick: a tenant that starts running after the culler listed
    everything is found through its tenant event, not the 60 s safety net."""
    await asyncio.sleep(0.2)  # the culler has listed (nothing) and sleeps up to 60 s
    await start_running(registry, runtime, coordination, "late", idle_timeout_s=1)
    await coordination.publish_event("late", "running")
    await eventually(lambda: is_idle(registry, "late"), timeout=6, what="late tenant culled")


async def test_shorter_live_default_applies(
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    redis_client: aioredis.Redis,
    wake: WakeManager,
) -> None:
    coordination = Coordination(redis_client, config_defaults=LiveConfig(default_idle_timeout_s=1))
    await start_running(registry, runtime, coordination, "t1", idle_timeout_s=None)
    culler = make_culler(registry, runtime, coordination, wake)
    task = asyncio.create_task(culler.run())
    try:
        await eventually(lambda: is_idle(registry, "t1"), timeout=6, what="culled by default")
    finally:
        await stop_tasks(task)


async def test_woken_meanwhile_is_not_slept(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination, wake: WakeManager
) -> None:
    """The culler re-reads the record before acting: fresh activity wins."""
    await start_running(registry, runtime, coordination, "t1", idle_timeout_s=1, idle_for_s=5)
    culler = make_culler(registry, runtime, coordination, wake)
    await registry.touch("t1", utcnow())  # a message arrived after any listing
    task = asyncio.create_task(culler.run())
    try:
        await asyncio.sleep(0.3)
        assert await status_of(registry, "t1") == TenantStatus.RUNNING
        assert "t1" in culler.deadlines
    finally:
        await stop_tasks(task)


async def test_failed_sleep_is_retried_later_not_in_a_loop(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination, wake: WakeManager
) -> None:
    attempts: list[str] = []

    async def flaky_sleep(tid: str) -> None:
        attempts.append(tid)
        if len(attempts) == 1:
            # Fails fast and (like a real sleep) publishes an event that re-kicks the culler.
            await coordination.publish_event(tid, "sleep_failed")
            raise RuntimeError("lock held elsewhere")
        await wake.sleep(tid)

    await start_running(registry, runtime, coordination, "t1", idle_timeout_s=1, idle_for_s=5)
    culler = Culler(
        registry=registry,
        runtime=runtime,
        coordination=coordination,
        sleep=flaky_sleep,
        retry_after_s=0.5,
    )
    task = asyncio.create_task(culler.run())
    try:
        await eventually(lambda: is_idle(registry, "t1"), timeout=5, what="culled on retry")
        assert attempts == ["t1", "t1"]
    finally:
        await stop_tasks(task)
