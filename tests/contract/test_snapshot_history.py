"""Snapshot history on both state stores: every save lands in it, periodic snapshots add to
it without touching the latest, the retention prunes by count and by age (never the newest),
and a restore makes an older snapshot the latest as a new generation (fencing holds)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.adapters.local.run_state import restore_run_state, save_run_state
from daemon.adapters.state_keys import SNAPSHOT_KEY, StaleSnapshot
from daemon.ports import SnapshotRetention, StateStore
from tests.contract.conftest import StoreFactory


def write_state(src: Path, text: str) -> Path:
    (src / "workspace").mkdir(parents=True, exist_ok=True)
    (src / "workspace" / "notes.md").write_text(text)
    return src


def restored_notes(dest: Path) -> str:
    return (dest / "workspace" / "notes.md").read_text()


async def test_every_save_is_kept_newest_first_with_time_size_and_trigger(
    state_store: StateStore, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    sizes = []
    for text in ("monday", "tuesday", "wednesday"):
        sizes.append(await state_store.save_snapshot("hist", write_state(src, text)))
    history = await state_store.list_snapshots("hist")
    assert [s.trigger for s in history] == ["sleep"] * 3
    assert [s.size for s in history] == sizes[::-1]
    assert history[0].taken_at > history[1].taken_at > history[2].taken_at
    assert all(s.key.startswith("snapshots/history/") for s in history)
    dest = tmp_path / "dest"
    await state_store.restore_snapshot("hist", dest)
    assert restored_notes(dest) == "wednesday"
    assert await state_store.list_snapshots("other") == []


async def test_a_periodic_snapshot_goes_to_the_history_only(
    state_store: StateStore, tmp_path: Path
) -> None:
    src = write_state(tmp_path / "src", "slept")
    await state_store.save_snapshot("per", src)
    latest = await state_store.get("per", SNAPSHOT_KEY)
    (src / "cache").mkdir()
    (src / "cache" / "big.bin").write_bytes(b"regenerable")
    write_state(src, "running")
    taken = await state_store.record_snapshot("per", src, trigger="periodic", exclude=["cache"])
    assert taken is not None and taken.trigger == "periodic"
    assert await state_store.get("per", SNAPSHOT_KEY) == latest
    assert (await state_store.list_snapshots("per"))[0].key == taken.key
    dest = tmp_path / "dest"
    (dest / "state").mkdir(parents=True)
    await state_store.promote_snapshot("per", taken.key)
    await state_store.restore_snapshot("per", dest / "state")
    assert restored_notes(dest / "state") == "running"
    assert not (dest / "state" / "cache").exists()


async def test_retention_by_count_keeps_the_newest(
    open_state_store: StoreFactory, tmp_path: Path
) -> None:
    store = await open_state_store(SnapshotRetention(keep=2, max_age_s=0))
    src = tmp_path / "src"
    for text in ("1", "2", "3", "4"):
        await store.save_snapshot("count", write_state(src, text))
    history = await store.list_snapshots("count")
    assert len(history) == 2
    dest = tmp_path / "dest"
    await store.promote_snapshot("count", history[-1].key)
    await store.restore_snapshot("count", dest)
    assert restored_notes(dest) == "3"


async def test_retention_by_age_never_drops_the_newest(
    open_state_store: StoreFactory, tmp_path: Path
) -> None:
    store = await open_state_store(SnapshotRetention(keep=10, max_age_s=3600))
    src = tmp_path / "src"
    for text in ("old", "older", "newest"):
        await store.save_snapshot("age", write_state(src, text))
    history = await store.list_snapshots("age")
    assert len(history) == 3  # all young
    # An hour and a bit later, only the newest remains.
    later = history[0].taken_at + timedelta(seconds=3601)
    removed = await store.prune_snapshots("age", later)
    assert sorted(removed) == sorted(s.key for s in history[1:])
    assert [s.key for s in await store.list_snapshots("age")] == [history[0].key]
    # Half an hour later nothing is due.
    await store.save_snapshot("age", write_state(src, "again"))
    young = await store.list_snapshots("age")
    assert await store.prune_snapshots("age", young[0].taken_at + timedelta(seconds=1800)) == []


async def test_no_history_when_keep_is_zero(open_state_store: StoreFactory, tmp_path: Path) -> None:
    store = await open_state_store(SnapshotRetention(keep=0))
    src = write_state(tmp_path / "src", "only latest")
    await store.save_snapshot("none", src)
    assert await store.record_snapshot("none", src, trigger="periodic") is None
    assert await store.list_snapshots("none") == []
    assert await store.list("none") == [SNAPSHOT_KEY]


async def test_a_restore_is_a_new_generation_and_keeps_the_history(
    state_store: StateStore, tmp_path: Path
) -> None:
    run_a = tmp_path / "run-a"
    await restore_run_state(state_store, "pitr", run_a)
    write_state(run_a / "state", "A")
    await save_run_state(state_store, "pitr", run_a)
    [first] = await state_store.list_snapshots("pitr")

    run_b = tmp_path / "run-b"
    generation_a = await restore_run_state(state_store, "pitr", run_b)
    write_state(run_b / "state", "B")
    await save_run_state(state_store, "pitr", run_b)
    assert len(await state_store.list_snapshots("pitr")) == 2

    restored = await state_store.promote_snapshot("pitr", first.key)
    assert restored.key == first.key
    history = await state_store.list_snapshots("pitr")
    assert [s.trigger for s in history] == ["restore", "sleep", "sleep"]

    run_c = tmp_path / "run-c"
    generation_c = await restore_run_state(state_store, "pitr", run_c)
    assert restored_notes(run_c / "state") == "A"
    assert not (run_c / "state" / ".otm-snapshot-origin").exists()
    # Same files as A, yet a new generation: a run that started from A cannot save over it.
    assert generation_c != generation_a
    with pytest.raises(StaleSnapshot):
        await state_store.save_snapshot_over("pitr", run_b / "state", generation_a)
    with pytest.raises(KeyError):
        await state_store.promote_snapshot(
            "pitr", "snapshots/history/20200101T000000.000000Z-sleep.tar.gz"
        )
    with pytest.raises(KeyError):
        await state_store.promote_snapshot("pitr", SNAPSHOT_KEY)


async def test_a_database_is_snapshotted_with_what_its_write_ahead_log_holds(
    state_store: StateStore, tmp_path: Path
) -> None:
    """A running agent's database: committed rows still only in its -wal file (no
    checkpoint yet) are in the snapshot; the -wal/-shm files themselves are not."""
    src = tmp_path / "src"
    src.mkdir()
    db = sqlite3.connect(src / "memory.sqlite")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE facts (fact TEXT)")
        db.executemany("INSERT INTO facts VALUES (?)", [("sky is blue",), ("otm",)])
        db.commit()
        assert (src / "memory.sqlite-wal").stat().st_size > 0
        await state_store.record_snapshot("wal", src, trigger="periodic")
    finally:
        db.close()
    [taken] = await state_store.list_snapshots("wal")
    await state_store.promote_snapshot("wal", taken.key)
    dest = tmp_path / "dest"
    await state_store.restore_snapshot("wal", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["memory.sqlite"]
    copy = sqlite3.connect(dest / "memory.sqlite")
    try:
        assert copy.execute("SELECT fact FROM facts ORDER BY fact").fetchall() == [
            ("otm",),
            ("sky is blue",),
        ]
    finally:
        copy.close()
