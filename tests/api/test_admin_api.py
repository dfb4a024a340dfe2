"""Admin API against a real app, real Redis and the SQLite registry."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from daemon import app_keys as keys
from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import Tenant, TenantStatus
from tests.api.conftest import ADMIN_TOKEN
from tests.support.admin_app import running_admin_app
from tests.support.polling import eventually

BOT_TOKEN = "123456:SECRET-BOT-TOKEN"


async def test_probes_are_open_and_api_needs_the_token(admin: TestClient) -> None:
    for path in ("/livez", "/readyz"):
        resp = await admin.get(path, headers={"Authorization": ""})
        assert resp.status == 200, path
    assert (await (await admin.get("/readyz")).json()) == {"ready": True, "failing": []}
    resp = await admin.get("/v1/tenants", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    assert "token" in (await resp.json())["error"]
    resp = await admin.get("/v1/tenants", headers={"Authorization": ""})
    assert resp.status == 401


async def test_tenant_crud_roundtrip(admin: TestClient) -> None:
    resp = await admin.post(
        "/v1/tenants",
        json={
            "tenant_id": "acme",
            "bot_token": BOT_TOKEN,
            "idle_timeout_s": 120,
            "labels": {"tier": "gold"},
        },
    )
    assert resp.status == 201
    created = await resp.json()
    assert created["tenant_id"] == "acme"
    assert created["status"] == "idle"
    assert created["idle_timeout_s"] == 120
    assert created["has_bot_token"] is True

    got = await (await admin.get("/v1/tenants/acme")).json()
    assert got["created_at"] == created["created_at"]

    resp = await admin.patch("/v1/tenants/acme", json={"idle_timeout_s": 300})
    assert resp.status == 200
    assert (await resp.json())["idle_timeout_s"] == 300

    listed = await (await admin.get("/v1/tenants")).json()
    assert [t["tenant_id"] for t in listed["items"]] == ["acme"]
    selected = await (await admin.get("/v1/tenants", params={"selector": "tier=silver"})).json()
    assert selected["items"] == []

    assert (await admin.delete("/v1/tenants/acme")).status == 204
    assert (await admin.get("/v1/tenants/acme")).status == 404


async def test_secrets_never_in_responses_or_logs(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = []
    resp = await admin.post("/v1/tenants", json={"tenant_id": "sec", "bot_token": BOT_TOKEN})
    bodies.append(await resp.text())
    bodies.append(await (await admin.get("/v1/tenants/sec")).text())
    bodies.append(await (await admin.get("/v1/tenants")).text())
    bodies.append(await (await admin.patch("/v1/tenants/sec", json={"bot_token": "9:NEW"})).text())
    for body in bodies:
        assert BOT_TOKEN not in body and "9:NEW" not in body
        for key in ("bot_token", "webhook_secret", "gateway_token", "hooks_token"):
            assert f'"{key}"' not in body
    assert BOT_TOKEN not in caplog.text
    assert ADMIN_TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"tenant_id": "Bad_Id"}, 400, "invalid tenant id"),
        ({"tenant_id": "-x"}, 400, "invalid tenant id"),
        ({"tenant_id": "a" * 41}, 400, "invalid tenant id"),
        ({}, 400, "tenant_id is required"),
        ({"tenant_id": "ok", "nope": 1}, 400, "unknown field"),
        ({"tenant_id": "ok", "idle_timeout_s": "soon"}, 400, "idle_timeout_s"),
        ({"tenant_id": "ok", "labels": {"a": "b c"}}, 400, "label"),
    ],
)
async def test_create_rejects_bad_input_and_changes_nothing(
    admin: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    resp = await admin.post("/v1/tenants", json=body)
    assert resp.status == status
    assert needle in (await resp.json())["error"]
    assert (await (await admin.get("/v1/tenants")).json())["items"] == []


async def test_malformed_json_and_non_object(admin: TestClient) -> None:
    resp = await admin.post(
        "/v1/tenants", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "malformed JSON" in (await resp.json())["error"]
    resp = await admin.post("/v1/tenants", json=["a"])
    assert resp.status == 400


async def test_duplicate_unknown_and_invalid_path(admin: TestClient) -> None:
    assert (
        await admin.post(
            "/v1/tenants", json={"bot_token": "1:t", "tenant_id": "dup", "idle_timeout_s": 60}
        )
    ).status == 201
    resp = await admin.post(
        "/v1/tenants", json={"bot_token": "1:t", "tenant_id": "dup", "idle_timeout_s": 999}
    )
    assert resp.status == 409
    assert "already exists" in (await resp.json())["error"]
    # The loser changed nothing.
    assert (await (await admin.get("/v1/tenants/dup")).json())["idle_timeout_s"] == 60
    assert (await admin.get("/v1/tenants/ghost")).status == 404
    assert (await admin.patch("/v1/tenants/ghost", json={"idle_timeout_s": 60})).status == 404
    assert (await admin.delete("/v1/tenants/ghost")).status == 404
    assert (await admin.get("/v1/tenants/NOT_VALID")).status == 400


async def test_suspend_and_resume(admin: TestClient) -> None:
    await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "hold"})
    resp = await admin.post("/v1/tenants/hold/suspend")
    assert (await resp.json())["status"] == "suspended"
    resp = await admin.post("/v1/tenants/hold/resume")
    assert (await resp.json())["status"] == "idle"
    # Resuming a tenant that is not held is a conflict, not a silent success.
    assert (await admin.post("/v1/tenants/hold/resume")).status == 409
    events = await (await admin.get("/v1/tenants/hold/events")).json()
    assert [e["kind"] for e in events["items"]] == ["created", "suspended", "resumed"]


async def test_live_config(admin: TestClient) -> None:
    config = await (await admin.get("/v1/config")).json()
    assert config["warm_pool_target"] == 0
    resp = await admin.patch("/v1/config", json={"warm_pool_target": 3})
    assert (await resp.json())["warm_pool_target"] == 3
    assert (await (await admin.get("/v1/config")).json())["warm_pool_target"] == 3
    for bad in ({"warm_pool_target": -1}, {"warm_pool_target": "x"}, {"nope": 1}, {}):
        resp = await admin.patch("/v1/config", json=bad)
        assert resp.status == 400, bad
    assert (await (await admin.get("/v1/config")).json())["warm_pool_target"] == 3


async def test_metrics_exposed(admin: TestClient) -> None:
    resp = await admin.get("/metrics", headers={"Authorization": ""})
    assert resp.status == 200
    text = await resp.text()
    assert "otm_wake_phase_seconds" in text
    # The process's own series (the default registry's), for GC pauses and memory.
    assert 'python_gc_collections_total{generation="2"}' in text
    assert "process_resident_memory_bytes" in text


async def test_recreated_tenant_starts_with_a_clean_event_log(admin: TestClient) -> None:
    await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "again"})
    await admin.post("/v1/tenants/again/suspend")
    assert (await admin.delete("/v1/tenants/again")).status == 204
    await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "again"})
    events = await (await admin.get("/v1/tenants/again/events")).json()
    assert [e["kind"] for e in events["items"]] == ["created"]


async def test_tenants_running_before_a_start_are_known_to_the_router(
    redis_url: str, data_dir: Path
) -> None:
    """A restart finds busy tenants in the registry; the router's cache learns them at
    start-up (their first webhooks skip the budget for unknown ids)."""
    registry = SqliteRegistry(data_dir / "registry.sqlite3")
    for tid in ("busy", "asleep"):
        await registry.create(Tenant(tenant_id=tid, bot_token=BOT_TOKEN))
    await registry.update("busy", status=TenantStatus.RUNNING)
    await registry.close()
    async with running_admin_app(redis_url, data_dir, ADMIN_TOKEN) as client:
        cache = client.server.app[keys.TENANT_CACHE]
        await eventually(lambda: cache.knows("busy"), what="busy learned at start-up")
        assert not cache.knows("asleep")
