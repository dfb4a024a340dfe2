"""StateStore contract: every adapter (directory, S3 on moto) behaves the same."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from daemon.adapters.state_keys import SNAPSHOT_KEY
from daemon.adapters.state_s3 import S3StateStore
from daemon.model import InvalidTenantId
from daemon.ports import StateStore


async def test_put_get_overwrite(state_store: StateStore) -> None:
    await state_store.put("acme", "state/brain.db", b"v1")
    assert await state_store.get("acme", "state/brain.db") == b"v1"
    await state_store.put("acme", "state/brain.db", b"version two")
    assert await state_store.get("acme", "state/brain.db") == b"version two"
    await state_store.put("acme", "workspace/empty.txt", b"")
    assert await state_store.get("acme", "workspace/empty.txt") == b""


async def test_get_missing_key_raises_key_error(state_store: StateStore) -> None:
    with pytest.raises(KeyError):
        await state_store.get("acme", "state/nothing")
    await state_store.put("acme", "state/present", b"x")
    with pytest.raises(KeyError):
        await state_store.get("acme", "state/present/below")
    with pytest.raises(KeyError):
        await state_store.get("acme", "state")  # a prefix, not a key
    with pytest.raises(KeyError):
        await state_store.get("other", "state/present")


async def test_list_by_prefix_sorted(state_store: StateStore) -> None:
    keys = [
        "workspace/notes/b.md",
        "state/sessions/2.json",
        "state/brain.db",
        "workspace/notes/a.md",
        "state/sessions/1.json",
    ]
    for key in keys:
        await state_store.put("acme", key, key.encode())
    assert await state_store.list("acme") == sorted(keys)
    assert await state_store.list("acme", "state/") == [
        "state/brain.db",
        "state/sessions/1.json",
        "state/sessions/2.json",
    ]
    assert await state_store.list("acme", "workspace/notes/a") == ["workspace/notes/a.md"]
    assert await state_store.list("acme", "nothing/") == []
    assert await state_store.list("nobody") == []


async def test_delete_is_idempotent(state_store: StateStore) -> None:
    await state_store.put("acme", "state/a", b"a")
    await state_store.put("acme", "state/b", b"b")
    await state_store.delete("acme", "state/a")
    await state_store.delete("acme", "state/a")
    await state_store.delete("acme", "state/never-existed")
    assert await state_store.list("acme") == ["state/b"]
    with pytest.raises(KeyError):
        await state_store.get("acme", "state/a")


async def test_tenants_are_isolated(state_store: StateStore) -> None:
    # "acme" is a string prefix of "acme-2": the layout must still separate them.
    await state_store.put("acme", "state/brain.db", b"acme's")
    await state_store.put("acme-2", "state/brain.db", b"acme-2's")
    await state_store.put("acme-2", "workspace/x", b"x")
    assert await state_store.get("acme", "state/brain.db") == b"acme's"
    assert await state_store.get("acme-2", "state/brain.db") == b"acme-2's"
    assert await state_store.list("acme") == ["state/brain.db"]

    await state_store.delete_tenant("acme")
    assert await state_store.list("acme") == []
    assert await state_store.list("acme-2") == ["state/brain.db", "workspace/x"]
    assert await state_store.get("acme-2", "state/brain.db") == b"acme-2's"


async def test_delete_tenant_removes_everything(state_store: StateStore, tmp_path: Path) -> None:
    # More keys than one list page / delete batch of the S3 fixture.
    for i in range(7):
        await state_store.put("bulk", f"state/part-{i}", bytes([i]))
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"f")
    await state_store.save_snapshot("bulk", src)
    await state_store.delete_tenant("bulk")
    assert await state_store.list("bulk") == []
    assert await state_store.restore_snapshot("bulk", tmp_path / "dest") is False
    await state_store.delete_tenant("bulk")  # idempotent
    await state_store.delete_tenant("never-existed")


async def test_invalid_keys_are_rejected(state_store: StateStore) -> None:
    for key in ("../x", "/abs", "state/../../other/x", "", "state/dir/", ".."):
        with pytest.raises(ValueError):
            await state_store.put("acme", key, b"escape")
        with pytest.raises(ValueError):
            await state_store.get("acme", key)
        with pytest.raises(ValueError):
            await state_store.delete("acme", key)
    assert await state_store.list("acme") == []


async def test_invalid_tenant_ids_are_rejected(state_store: StateStore) -> None:
    for tenant_id in ("../acme", "Acme", "a/b", ""):
        with pytest.raises(InvalidTenantId):
            await state_store.put(tenant_id, "state/x", b"x")
        with pytest.raises(InvalidTenantId):
            await state_store.list(tenant_id)
        with pytest.raises(InvalidTenantId):
            await state_store.delete_tenant(tenant_id)


async def test_large_object_round_trips(state_store: StateStore) -> None:
    blob = os.urandom(5 * 1024 * 1024 + 17)
    await state_store.put("big", "state/brain.db", blob)
    assert await state_store.get("big", "state/brain.db") == blob


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root).as_posix()): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def test_snapshot_round_trip(state_store: StateStore, tmp_path: Path) -> None:
    src = tmp_path / "agent-state"
    (src / "sessions" / "2026" / "01").mkdir(parents=True)
    (src / "empty-dir").mkdir()
    (src / "brain.db").write_bytes(bytes(range(256)) * 1000)
    (src / "sessions" / "2026" / "01" / "chat.jsonl").write_text('{"role": "user"}\n')
    (src / "memory.md").write_text("remember: ünïcode ✓\n")
    (src / "gateway.lock").write_text("pid 4242")
    (src / "sessions" / "writer.lock").write_text("pid 4242")

    stored = await state_store.save_snapshot("snap", src)
    assert stored > 0
    assert len(await state_store.get("snap", SNAPSHOT_KEY)) == stored
    assert SNAPSHOT_KEY in await state_store.list("snap")

    dest = tmp_path / "restored"
    assert await state_store.restore_snapshot("snap", dest) is True
    expected = {k: v for k, v in _tree(src).items() if not k.endswith(".lock")}
    assert _tree(dest) == expected
    assert set(expected) == {"brain.db", "sessions/2026/01/chat.jsonl", "memory.md"}


async def test_snapshot_replaces_the_previous_one(state_store: StateStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("first")
    await state_store.save_snapshot("snap", src)
    (src / "a.txt").write_text("second")
    (src / "b.txt").write_text("new")
    await state_store.save_snapshot("snap", src)
    dest = tmp_path / "dest"
    assert await state_store.restore_snapshot("snap", dest) is True
    assert _tree(dest) == {"a.txt": b"second", "b.txt": b"new"}


async def test_restore_without_snapshot(state_store: StateStore, tmp_path: Path) -> None:
    await state_store.put("fresh", "state/x", b"x")
    assert await state_store.restore_snapshot("fresh", tmp_path / "dest") is False
    assert await state_store.restore_snapshot("nobody", tmp_path / "dest") is False


# -- S3 specifics -----------------------------------------------------------------


async def test_s3_layout_and_batched_tenant_delete(moto_url: str) -> None:
    store = await S3StateStore.open("otm-layout", "eu-west-1", moto_url, page_size=3)
    calls: list[tuple[str, dict[str, Any]]] = []

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    try:
        await store.put("acme", "state/brain.db", b"db")
        objects = store.client.list_objects_v2(Bucket="otm-layout")["Contents"]
        assert [o["Key"] for o in objects] == ["tenants/acme/state/brain.db"]
        location = store.client.get_bucket_location(Bucket="otm-layout")
        assert location["LocationConstraint"] == "eu-west-1"

        for i in range(7):
            await store.put("acme", f"workspace/{i}", b"w")
        store.client.meta.events.register("provide-client-params.s3", hook)
        await store.delete_tenant("acme")
        deletes = [params for name, params in calls if name == "DeleteObjects"]
        assert [len(p["Delete"]["Objects"]) for p in deletes] == [3, 3, 2]
        assert all(
            o["Key"].startswith("tenants/acme/") for p in deletes for o in p["Delete"]["Objects"]
        )
        assert store.client.list_objects_v2(Bucket="otm-layout").get("KeyCount") == 0
    finally:
        await store.close()


async def test_s3_open_reuses_an_existing_bucket(moto_url: str) -> None:
    first = await S3StateStore.open("otm-shared", "us-east-1", moto_url)
    try:
        await first.put("acme", "state/x", b"kept")
        second = await S3StateStore.open("otm-shared", "us-east-1", moto_url)
        try:
            assert await second.get("acme", "state/x") == b"kept"
        finally:
            await second.close()
    finally:
        await first.close()
