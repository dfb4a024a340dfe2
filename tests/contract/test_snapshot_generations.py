"""A snapshot is replaced only by the state of a run that started from it, on both state
stores: a run dir whose restore never completed is not saved at all, and a run that
started from an older snapshot cannot overwrite a newer one."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.adapters.local.run_state import (
    RESTORED_MARKER,
    restore_run_state,
    save_run_state,
)
from daemon.adapters.state_keys import NO_SNAPSHOT, StaleSnapshot
from daemon.ports import StateStore


def state_file(run_dir: Path) -> Path:
    return run_dir / "state" / "counter.txt"


async def test_a_run_saves_over_the_snapshot_it_started_from(
    state_store: StateStore, tmp_path: Path
) -> None:
    first = tmp_path / "run-1"
    assert await restore_run_state(state_store, "gen", first) == NO_SNAPSHOT
    state_file(first).write_text("1")
    assert await save_run_state(state_store, "gen", first)

    second = tmp_path / "run-2"
    generation = await restore_run_state(state_store, "gen", second)
    assert generation != NO_SNAPSHOT
    assert (second / RESTORED_MARKER).read_text().strip() == generation
    assert state_file(second).read_text() == "1"
    state_file(second).write_text("2")
    assert await save_run_state(state_store, "gen", second)

    # run-1 started from nothing; the snapshot has moved on twice since: refused.
    state_file(first).write_text("stale")
    assert await save_run_state(state_store, "gen", first) is None
    with pytest.raises(StaleSnapshot):
        await state_store.save_snapshot_over("gen", first / "state", NO_SNAPSHOT)
    check = tmp_path / "check"
    await restore_run_state(state_store, "gen", check)
    assert state_file(check).read_text() == "2"


async def test_a_run_dir_never_fully_restored_is_not_saved(
    state_store: StateStore, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    await restore_run_state(state_store, "half", good)
    state_file(good).write_text("history")
    assert await save_run_state(state_store, "half", good)

    # A wake killed mid-restore: a state dir, but no marker.
    interrupted = tmp_path / "interrupted"
    (interrupted / "state").mkdir(parents=True)
    assert await save_run_state(state_store, "half", interrupted) is None
    check = tmp_path / "check"
    await restore_run_state(state_store, "half", check)
    assert state_file(check).read_text() == "history"
