"""A Kubernetes agent's snapshot history on both state stores: its synced file tree (the
``state/`` and ``workspace/`` keys) packed into a history entry, and rewritten from one (every
file back, every key not in the entry deleted, the rest of the tenant untouched)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.adapters.state_keys import SNAPSHOT_KEY
from daemon.ports import SnapshotRetention, StateStore
from tests.contract.conftest import StoreFactory

MONDAY = {
    "state/openclaw.json": b'{"day": "monday"}',
    "state/agents/main/sessions/s1.jsonl": b"hello\n",
    "workspace/notes.md": b"monday notes",
}


async def put_tree(store: StateStore, tenant_id: str, tree: dict[str, bytes]) -> None:
    for key, data in tree.items():
        await store.put(tenant_id, key, data)


async def tree_of(store: StateStore, tenant_id: str) -> dict[str, bytes]:
    keys = await store.list(tenant_id, "state/") + await store.list(tenant_id, "workspace/")
    return {key: await store.get(tenant_id, key) for key in keys}


async def test_the_tree_at_sleep_becomes_a_history_entry_and_comes_back(
    state_store: StateStore,
) -> None:
    await put_tree(state_store, "kube", MONDAY)
    await state_store.put("kube", "other/kept.txt", b"not part of the tree")
    monday = await state_store.record_tree("kube", trigger="sleep")
    assert monday is not None and monday.trigger == "sleep"
    assert [s.key for s in await state_store.list_snapshots("kube")] == [monday.key]

    await put_tree(state_store, "kube", {"workspace/notes.md": b"tuesday notes"})
    await state_store.put("kube", "workspace/new-on-tuesday.md", b"gone after the restore")
    await state_store.record_tree("kube", trigger="sleep")

    restored = await state_store.restore_tree("kube", monday.key)
    assert restored.key == monday.key
    assert await tree_of(state_store, "kube") == MONDAY
    assert await state_store.get("kube", "other/kept.txt") == b"not part of the tree"
    history = await state_store.list_snapshots("kube")
    assert [s.trigger for s in history] == ["restore", "sleep", "sleep"]
    with pytest.raises(KeyError):
        await state_store.get("kube", SNAPSHOT_KEY)  # a tree tenant has no latest tarball


async def test_a_restored_entry_can_be_restored_again(state_store: StateStore) -> None:
    await put_tree(state_store, "again", MONDAY)
    monday = await state_store.record_tree("again", trigger="sleep")
    assert monday is not None
    await state_store.restore_tree("again", monday.key)
    restore_entry = (await state_store.list_snapshots("again"))[0]
    await put_tree(state_store, "again", {"workspace/notes.md": b"changed"})
    await state_store.restore_tree("again", restore_entry.key)
    assert await tree_of(state_store, "again") == MONDAY  # the origin member is not a file


async def test_an_empty_tree_restores_to_an_empty_tree(state_store: StateStore) -> None:
    empty = await state_store.record_tree("blank", trigger="sleep")
    assert empty is not None
    await put_tree(state_store, "blank", MONDAY)
    await state_store.restore_tree("blank", empty.key)
    assert await tree_of(state_store, "blank") == {}


async def test_a_database_in_the_tree_round_trips(state_store: StateStore, tmp_path: Path) -> None:
    db = tmp_path / "main.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('kept')")
    conn.close()
    await state_store.put("db", "state/memory/main.sqlite", db.read_bytes())
    entry = await state_store.record_tree("db", trigger="sleep")
    assert entry is not None
    await state_store.delete("db", "state/memory/main.sqlite")
    await state_store.restore_tree("db", entry.key)
    back = tmp_path / "back.sqlite"
    back.write_bytes(await state_store.get("db", "state/memory/main.sqlite"))
    with sqlite3.connect(back) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("kept",)]
    conn.close()


async def test_an_unknown_entry_is_a_key_error_and_changes_nothing(
    state_store: StateStore,
) -> None:
    await put_tree(state_store, "miss", MONDAY)
    for key in ("snapshots/history/20260101T000000.000000Z-sleep.tar.gz", "state/openclaw.json"):
        with pytest.raises(KeyError):
            await state_store.restore_tree("miss", key)
    assert await tree_of(state_store, "miss") == MONDAY


async def test_no_tree_entry_when_keep_is_zero(open_state_store: StoreFactory) -> None:
    store = await open_state_store(retention=SnapshotRetention(keep=0, max_age_s=0))
    await put_tree(store, "none", MONDAY)
    assert await store.record_tree("none", trigger="sleep") is None
    assert await store.list_snapshots("none") == []
