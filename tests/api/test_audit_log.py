"""The audit stream against a real Redis: retention by count and by age, paging and filters;
the admin endpoints of tokens and the audit log (wiring, bad input)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.admin.audit import AUDIT_ACTION_ATTR, READ_BATCH, AuditLog
from daemon.app import create_app
from daemon.redis_keys import AUDIT_STREAM
from daemon.settings import load_settings
from tests.api.conftest import ADMIN_TOKEN
from tests.support.admin_app import running_admin_app
from tests.support.redis_cluster import BACKENDS

# The Redis tests also run on a Redis Cluster (tests/conftest.py parametrizes redis_backend).
REDIS_BACKENDS = BACKENDS

DAY_S = 86400.0


async def _numbers(log: AuditLog, **filters: object) -> list[int]:
    items, _ = await log.read(limit=1000, **filters)  # type: ignore[arg-type]
    return [item["n"] for item in items]


async def test_keeps_at_most_max_entries_newest_first_out(redis_client: aioredis.Redis) -> None:
    log = AuditLog(redis_client, max_entries=3, retention_s=DAY_S)
    for n in range(5):
        await log.append({"n": n, "tenant": "acme"})
    assert await _numbers(log) == [2, 3, 4]
    assert await redis_client.xlen(AUDIT_STREAM) == 3


async def test_drops_entries_older_than_the_retention(redis_client: aioredis.Redis) -> None:
    log = AuditLog(redis_client, max_entries=100, retention_s=DAY_S)
    seconds, micros = await redis_client.time()  # entry ids are stamped on Redis's clock
    now_ms = seconds * 1000 + micros // 1000
    for n, age_s in ((0, 2 * DAY_S), (1, DAY_S + 60), (2, DAY_S - 60)):
        entry_id = f"{now_ms - int(age_s * 1000)}-0"
        await redis_client.xadd(AUDIT_STREAM, {"entry": json.dumps({"n": n})}, id=entry_id)
    await log.append({"n": 3})
    assert await _numbers(log) == [2, 3]


async def test_pages_back_in_time_and_filters_across_batches(
    redis_client: aioredis.Redis,
) -> None:
    log = AuditLog(redis_client, max_entries=10_000, retention_s=DAY_S)
    await log.append({"n": 0, "tenant": "acme", "actor": "ci", "action": "tenant.create"})
    for n in range(1, READ_BATCH + 50):  # the acme entry is beyond the first batch
        await log.append({"n": n, "tenant": "other", "actor": "admin", "action": "tenant.wake"})
    assert await _numbers(log, tenant="acme") == [0]
    assert await _numbers(log, actor="ci") == [0]
    assert await _numbers(log, action="tenant.create") == [0]

    newest, cursor = await log.read(limit=2)
    assert [i["n"] for i in newest] == [READ_BATCH + 48, READ_BATCH + 49]
    older, _ = await log.read(limit=2, before=cursor)
    assert [i["n"] for i in older] == [READ_BATCH + 46, READ_BATCH + 47]
    last, done = await log.read(limit=1000, tenant="other", before=older[0]["id"])
    assert [i["n"] for i in last] == list(range(1, READ_BATCH + 46))
    assert done is None


async def test_endpoints_wire_retention_and_refuse_bad_input(
    redis_url: str, redis_backend: str, data_dir: Path
) -> None:
    async with running_admin_app(
        redis_url,
        data_dir,
        ADMIN_TOKEN,
        audit_max_entries=2,
        redis_cluster=redis_backend == "cluster",
    ) as client:
        for minutes in (11, 12, 13):
            resp = await client.patch("/v1/config", json={"default_idle_timeout_s": minutes * 60})
            assert resp.status == 200
        resp = await client.get("/v1/audit")
        body = await resp.json()
        assert [e["changes"]["default_idle_timeout_s"]["after"] for e in body["items"]] == [
            720,
            780,
        ]
        assert body["next"] is None

        for query in ("limit=0", "limit=x", "before=nope", "since=yesterday", "tenant=Bad_Id"):
            resp = await client.get(f"/v1/audit?{query}")
            assert resp.status == 400, query
        resp = await client.post("/v1/tokens", data=b"{not json")
        assert resp.status == 400
        resp = await client.post("/v1/tokens", json={"name": "Bad Name"})
        assert resp.status == 400
        resp = await client.get("/v1/audit", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
        resp = await client.get("/v1/tokens", headers={"Authorization": "Basic x"})
        assert resp.status == 401


def test_every_mutating_admin_route_is_audited(tmp_path: Path) -> None:
    """A new POST/PATCH/PUT/DELETE admin route must be `@audited` (daemon/admin/audit.py)."""
    settings = load_settings(flags={"data_dir": str(tmp_path / "otm")}, env={})
    app = create_app(settings)
    mutating = [
        route for route in app.router.routes() if route.method in ("POST", "PATCH", "PUT", "DELETE")
    ]
    assert len(mutating) >= 12
    missing = [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in mutating
        if not getattr(route.handler, AUDIT_ACTION_ATTR, None)
    ]
    assert missing == []


async def test_access_log_can_be_turned_off(
    redis_url: str, redis_backend: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="daemon.admin.access"):
        for enabled in (False, True):
            async with running_admin_app(
                redis_url,
                data_dir / str(enabled),
                ADMIN_TOKEN,
                admin_access_log=enabled,
                redis_cluster=redis_backend == "cluster",
            ) as client:
                assert (await client.get("/v1/tenants")).status == 200
            lines = [r for r in caplog.records if r.name == "daemon.admin.access"]
            assert [r.getMessage().split()[:3] for r in lines] == (
                [["GET", "/v1/tenants", "200"]] if enabled else []
            )
