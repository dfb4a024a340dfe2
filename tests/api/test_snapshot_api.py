"""The snapshot endpoints' answers to bad input, and a restore of a suspended tenant
(restored, not woken), against the whole app (real Redis, SQLite, directory store)."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from daemon import app_keys as keys

RESTORE = "/v1/tenants/held/restore"


async def test_bad_requests(admin: TestClient) -> None:
    resp = await admin.post("/v1/tenants", json={"tenant_id": "held", "bot_token": "1:t"})
    assert resp.status == 201
    assert (await admin.get("/v1/tenants/nobody/snapshots")).status == 404
    assert (await admin.get("/v1/tenants/Bad_Id/snapshots")).status == 400
    resp = await admin.get("/v1/tenants/held/snapshots", headers={"Authorization": ""})
    assert resp.status == 401
    assert await (await admin.get("/v1/tenants/held/snapshots")).json() == {"items": []}
    cases: list[tuple[object, int, str]] = [
        (b"{not json", 400, "malformed JSON"),
        ({}, 400, "exactly one of"),
        ({"snapshot": "k", "at": "2026-01-01T00:00:00Z"}, 400, "exactly one of"),
        ({"snapshot": 7}, 400, "snapshot must be"),
        ({"at": "yesterday"}, 400, "not an RFC 3339 time"),
        ({"at": "2026-01-01T00:00:00"}, 400, "no time zone"),
        ({"at": "2026-01-01T00:00:00Z"}, 404, "no snapshot taken at or before"),
        ({"snapshot": "snapshots/history/x.tar.gz"}, 404, "no snapshot"),
    ]
    for body, status, fragment in cases:
        if isinstance(body, bytes):
            resp = await admin.post(RESTORE, data=body)
        else:
            resp = await admin.post(RESTORE, json=body)
        assert resp.status == status, (body, await resp.text())
        assert fragment in (await resp.json())["error"], body
    resp = await admin.post("/v1/tenants/nobody/restore", json={"at": "2026-01-01T00:00:00Z"})
    assert resp.status == 404


async def test_a_suspended_tenant_is_restored_but_not_woken(
    admin: TestClient, tmp_path: Path
) -> None:
    resp = await admin.post("/v1/tenants", json={"tenant_id": "held", "bot_token": "1:t"})
    assert resp.status == 201
    store = admin.server.app[keys.STATE_STORE]
    src = tmp_path / "state"
    src.mkdir()
    for text in ("old", "new"):
        (src / "notes.md").write_text(text)
        await store.save_snapshot("held", src)
    assert (await admin.post("/v1/tenants/held/suspend")).status == 200
    history = (await (await admin.get("/v1/tenants/held/snapshots")).json())["items"]
    assert [item["trigger"] for item in history] == ["sleep", "sleep"]

    resp = await admin.post(RESTORE, json={"at": history[1]["taken_at"]})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["restored"]["key"] == history[1]["key"]
    assert body["tenant"]["status"] == "suspended"
    check = tmp_path / "check"
    assert await store.restore_snapshot("held", check)
    assert (check / "notes.md").read_text() == "old"
