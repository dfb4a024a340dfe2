"""Reading a turn in flight from OpenClaw's ``sessions.list`` rows (shapes as the pinned
gateway returned them mid-turn and after the reply)."""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.agent.openclaw_activity import activity_of

RUNNING = {"key": "agent:main:main", "hasActiveRun": True, "activeRunIds": None,
           "status": "running", "startedAt": 1796404080494, "endedAt": None}  # fmt: skip
DONE = {"key": "agent:main:main", "hasActiveRun": False, "activeRunIds": [],
        "status": "done", "startedAt": 1796404080494, "endedAt": 1796404088800}  # fmt: skip


def test_a_session_with_an_active_run_is_busy() -> None:
    activity = activity_of([RUNNING])
    assert activity.busy and activity.pending_turns == 1 and activity.last_turn_at is None


def test_finished_runs_give_the_last_turn_time() -> None:
    activity = activity_of([DONE, {**DONE, "key": "other", "endedAt": 1796404000000}, "junk"])
    assert not activity.busy and activity.pending_turns == 0
    assert activity.last_turn_at == datetime.fromtimestamp(1796404088.8, UTC)


def test_no_sessions_is_idle_with_no_turn() -> None:
    activity = activity_of([])
    assert (activity.busy, activity.pending_turns, activity.last_turn_at) == (False, 0, None)
