"""GET /v1/watch and GET /v1/status on an in-process daemon app (real Redis, SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from daemon.admin import watch as admin_watch
from daemon.admin.watch import WatchStream
from daemon.redis_keys import EVENTS_CHANNEL
from tests.support.admin_app import running_admin_app
from tests.support.polling import eventually

TOKEN = "watch-test-token"


@pytest.fixture
async def admin(redis_url: str, data_dir: Path) -> AsyncIterator[TestClient]:
    async with running_admin_app(redis_url, data_dir, TOKEN) as client:
        yield client


async def next_event(resp: ClientResponse, *, comments: bool = False) -> tuple[str, Any]:
    """The next SSE event as (name, data), or ("comment", text) when ``comments``."""
    name, data = "message", []
    while True:
        raw = await asyncio.wait_for(resp.content.readline(), 10)
        assert raw, "stream ended"
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            if comments:
                return "comment", line[1:].strip()
            continue
        if not line:
            if data:
                return name, json.loads("\n".join(data))
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


async def open_watch(admin: TestClient, **params: str) -> ClientResponse:
    resp = await admin.get("/v1/watch", params=params)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return resp


async def test_snapshot_then_upserts_and_deletes(admin: TestClient) -> None:
    assert (
        await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "acme"})
    ).status == 201
    async with await open_watch(admin) as resp:
        name, data = await next_event(resp)
        assert name == "snapshot"
        assert [t["tenant_id"] for t in data["items"]] == ["acme"]
        assert "bot_token" not in data["items"][0]

        assert (
            await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "beta"})
        ).status == 201
        name, data = await next_event(resp)
        assert (name, data["type"], data["tenant"]["tenant_id"]) == ("tenant", "upsert", "beta")
        assert data["tenant"]["status"] == "idle"

        assert (await admin.post("/v1/tenants/acme/suspend")).status == 200
        name, data = await next_event(resp)
        assert (data["type"], data["tenant"]["tenant_id"]) == ("upsert", "acme")
        assert data["tenant"]["status"] == "suspended"

        assert (await admin.delete("/v1/tenants/beta")).status == 204
        name, data = await next_event(resp)
        assert data == {"type": "delete", "tenant": {"tenant_id": "beta", "status": "deleted"}}
        assert (await admin.get("/v1/status")).status == 200


async def test_filters_and_leaving_the_selection(admin: TestClient) -> None:
    await admin.post(
        "/v1/tenants", json={"bot_token": "1:t", "tenant_id": "gold", "labels": {"tier": "gold"}}
    )
    await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "plain"})
    async with await open_watch(admin, selector="tier=gold", status="idle") as resp:
        assert [t["tenant_id"] for t in (await next_event(resp))[1]["items"]] == ["gold"]
        await admin.patch("/v1/tenants/plain", json={"idle_timeout_s": 60})  # not selected
        await admin.post("/v1/tenants/gold/suspend")  # leaves status=idle
        assert (await next_event(resp))[1] == {
            "type": "delete",
            "tenant": {"tenant_id": "gold", "status": "deleted"},
        }
        await admin.post("/v1/tenants/gold/resume")  # back in
        _, data = await next_event(resp)
        assert (data["type"], data["tenant"]["tenant_id"]) == ("upsert", "gold")
    for params in ({"status": "sleepy"}, {"selector": "=x"}):
        resp = await admin.get("/v1/watch", params=params)
        assert resp.status == 400
        assert "error" in await resp.json()
    resp = await admin.get("/v1/watch", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401


async def test_keepalive_comments(admin: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_watch, "KEEPALIVE_S", 0.05)
    async with await open_watch(admin) as resp:
        assert (await next_event(resp))[0] == "snapshot"
        assert await next_event(resp, comments=True) == ("comment", "keepalive")


async def test_lost_subscription_resyncs_with_a_snapshot(admin: TestClient, redis_url: str) -> None:
    async with await open_watch(admin) as resp:
        assert (await next_event(resp))[1] == {"items": []}
        killer = aioredis.Redis.from_url(redis_url)
        try:
            assert await killer.client_kill_filter(_type="pubsub") >= 1
        finally:
            await killer.aclose()
        # The hub resubscribes and every stream gets a fresh snapshot (events may be lost).
        name, data = await next_event(resp)
        assert (name, data) == ("snapshot", {"items": []})
        await admin.post("/v1/tenants", json={"bot_token": "1:t", "tenant_id": "after"})
        name, data = await next_event(resp)
        assert (data["type"], data["tenant"]["tenant_id"]) == ("upsert", "after")


async def test_shutdown_ends_open_streams(admin: TestClient) -> None:
    resp = await open_watch(admin)
    try:
        assert (await next_event(resp))[0] == "snapshot"
        status = await (await admin.get("/v1/status")).json()
        assert status["daemon"]["watchers"] == 1
        # Without closing streams on shutdown the server would wait out its 60 s
        # shutdown timeout; the bound here only guards against hanging.
        await asyncio.wait_for(admin.server.close(), 20)
        assert await asyncio.wait_for(resp.content.read(), 5) == b""
    finally:
        resp.close()


def test_stream_coalesces_and_falls_behind_instead_of_growing() -> None:
    stream = WatchStream(max_pending=3)
    for tenant_id in ("a", "b", "a", "c"):
        stream.offer(tenant_id)
    assert list(stream.pending) == ["a", "b", "c"]
    assert not stream.behind
    stream.offer("d")  # one more distinct id than fits: resync instead of queueing
    assert stream.behind
    assert stream.pending == {}
    stream.offer("e")
    assert stream.pending == {}
    stream.behind = False
    stream.offer("f")
    assert stream.take() == ["f"]
    assert stream.pending == {}


async def test_one_event_subscription_per_daemon(admin: TestClient, redis_url: str) -> None:
    """The daemon's message path, culler (while leading) and watch streams all hang off one
    Redis subscription to the events channel, however many of them listen."""

    async def leading() -> bool:
        body = await (await admin.get("/v1/status")).json()
        return bool(body["daemon"]["leader"])

    await eventually(leading, 10, "this daemon leads (its culler runs)")
    first, second = await open_watch(admin), await open_watch(admin)
    try:
        assert (await next_event(first))[0] == "snapshot"
        assert (await next_event(second))[0] == "snapshot"
        client = aioredis.Redis.from_url(redis_url)
        try:
            [(_, count)] = await client.pubsub_numsub(EVENTS_CHANNEL)
        finally:
            await client.aclose()
        assert count == 1
    finally:
        first.close()
        second.close()


async def test_status_counts_tenants_by_status(admin: TestClient) -> None:
    for tenant_id in ("c1", "c2", "c3"):
        await admin.post(
            "/v1/tenants", json={"bot_token": f"1:{tenant_id}", "tenant_id": tenant_id}
        )
    await admin.post("/v1/tenants/c2/suspend")
    body = await (await admin.get("/v1/status")).json()
    assert body["registry"]["ok"] is True
    assert body["registry"]["tenants_by_status"] == {"idle": 2, "suspended": 1}
