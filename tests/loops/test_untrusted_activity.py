"""Finding 5: agent-reported activity is untrusted input. A bad timestamp from one
tenant's agent neither crashes the culler for everyone nor exempts that tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.agent.activity import parse_agent_activity
from daemon.coordination import Coordination
from daemon.lifecycle.culler import Culler
from daemon.model import TenantStatus, utcnow
from daemon.ports import AgentActivity
from tests.loops.loop_support import is_idle, start_running
from tests.loops.memory_runtime import MemoryRuntime
from tests.support.polling import eventually

NAIVE = datetime(2026, 1, 1, 12, 0, 0)  # no timezone
YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
FAR_FUTURE = datetime(3000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("reported", [NAIVE, YEAR_9999, FAR_FUTURE], ids=["naive", "9999", "3000"])
async def test_one_agents_bad_timestamp_neither_stops_culling_nor_exempts_it(
    culler: Culler,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
    reported: datetime,
) -> None:
    runtime.activities["evil"] = AgentActivity(busy=False, pending_turns=0, last_turn_at=reported)
    await start_running(registry, runtime, coordination, "evil", idle_timeout_s=1, idle_for_s=10)
    await start_running(registry, runtime, coordination, "good", idle_timeout_s=1, idle_for_s=10)
    culler.kick()
    # Bounds, not speed claims: both are 10 s past a 1 s timeout.
    await eventually(lambda: is_idle(registry, "good"), timeout=8, what="good tenant culled")
    await eventually(lambda: is_idle(registry, "evil"), timeout=8, what="evil tenant culled")
    assert (await registry.get("evil")).last_active_at <= utcnow()
    assert (await registry.get("evil")).status == TenantStatus.IDLE


def test_activity_answer_is_validated_and_clamped() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    parsed = parse_agent_activity({"last_turn_at": "9999-12-31T23:59:59+00:00"}, now)
    assert parsed is not None and parsed.last_turn_at is None  # future: not credible
    skewed = (now + timedelta(seconds=2)).isoformat()
    parsed = parse_agent_activity({"last_turn_at": skewed}, now)
    assert parsed is not None and parsed.last_turn_at == now  # clock skew: clamped
    parsed = parse_agent_activity({"last_turn_at": "2026-01-01T12:00:00"}, now)
    assert parsed is not None and parsed.last_turn_at is None  # naive: ignored
    parsed = parse_agent_activity({"last_turn_at": "yesterday", "pending_turns": "lots"}, now)
    assert parsed == AgentActivity(busy=False, pending_turns=0, last_turn_at=None)
    parsed = parse_agent_activity({"busy": "no", "pending_turns": 10**100}, now)
    assert parsed is not None and parsed.busy is False and parsed.pending_turns == 1_000_000
    earlier = now - timedelta(minutes=5)
    parsed = parse_agent_activity({"busy": True, "last_turn_at": earlier.isoformat()}, now)
    assert parsed == AgentActivity(busy=True, pending_turns=0, last_turn_at=earlier)
    assert parse_agent_activity(["not", "an", "object"], now) is None
