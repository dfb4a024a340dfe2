"""A state store that refuses writes (read-only file system, a bucket policy denying
PutObject): readiness and status say so with the reason, and a sleep whose final save
fails answers 503 with the reason, keeps the agent's state on disk, and saves it once
the store accepts writes again."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from daemon import app_keys as keys
from daemon.adapters.state_dir import DirStateStore
from daemon.adapters.state_keys import SNAPSHOT_KEY

WRITE_ERROR = "[Errno 30] Read-only file system"


def read_only_fs(path: Path, data: bytes) -> None:
    raise OSError(errno.EROFS, "Read-only file system", str(path))


@pytest.fixture
def admin(admin_with_agents: TestClient) -> TestClient:
    """Its directory state store is the one made to refuse writes."""
    return admin_with_agents


def store_of(admin: TestClient) -> DirStateStore:
    store = admin.server.app[keys.STATE_STORE]
    assert isinstance(store, DirStateStore)
    return store


async def test_readiness_and_status_report_an_unwritable_store(
    admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    resp = await admin.get("/readyz")
    assert resp.status == 200, await resp.text()
    monkeypatch.setattr(store_of(admin), "_write_file", read_only_fs)
    resp = await admin.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["failing"] == ["state_store"]
    assert WRITE_ERROR in body["state_store"]
    resp = await admin.get("/v1/status")
    status = (await resp.json())["state_store"]
    assert status["ok"] is False and WRITE_ERROR in status["reason"]


async def test_failed_final_save_answers_503_and_keeps_the_state(
    admin: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resp = await admin.post("/v1/tenants", json={"tenant_id": "keep", "bot_token": "9:keep"})
    assert resp.status == 201, await resp.text()
    resp = await admin.post("/v1/tenants/keep/wake?wait=true")
    assert resp.status == 200, await resp.text()
    store = store_of(admin)
    monkeypatch.setattr(store, "_write_file", read_only_fs)

    resp = await admin.post("/v1/tenants/keep/sleep")
    body = await resp.json()
    assert resp.status == 503, body
    assert "final state save failed" in body["error"] and WRITE_ERROR in body["error"]
    tenant = await (await admin.get("/v1/tenants/keep")).json()
    assert tenant["status"] == "idle" and WRITE_ERROR in tenant["status_reason"]
    [run_dir] = [p for p in (data_dir / "agents" / "keep").iterdir() if p.is_dir()]
    assert (run_dir / "state").is_dir()  # kept until a save succeeds
    with pytest.raises(KeyError):
        await store.get("keep", SNAPSHOT_KEY)

    # No wake may start from the older snapshot while the newer state is unsaved:
    # the wake fails, and the tenant's reason names the store's error.
    resp = await admin.post("/v1/tenants/keep/wake?wait=true")
    assert resp.status == 503, await resp.text()
    tenant = await (await admin.get("/v1/tenants/keep")).json()
    assert tenant["status"] == "idle" and WRITE_ERROR in tenant["status_reason"]
    assert (run_dir / "state").is_dir()

    monkeypatch.undo()  # the store accepts writes again: the next wake saves it first
    resp = await admin.post("/v1/tenants/keep/wake?wait=true")
    assert resp.status == 200, await resp.text()
    assert not run_dir.exists()
    assert await store.get("keep", SNAPSHOT_KEY)
    resp = await admin.post("/v1/tenants/keep/sleep")
    assert resp.status == 200, await resp.text()
