"""End to end: the router's answers to bad input, dead letters, suspend/failed holds."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from daemon.embedded_redis import EmbeddedRedis
from daemon.msgpath.wake import STARTING_NOTICE
from daemon.redis_keys import PENDING_KEY, buffer_key
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import Daemon, replies
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

REPLY_TIMEOUT = 30.0


async def test_router_rejects_bad_input_and_wakes_nothing(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("guarded", "1101:g")
    update = make_text_update(1, 5, "hi")
    assert await daemon.post_update("Not_A_Valid_Id", secret, update) == 400
    assert await daemon.post_update("nobody", secret, update) == 404
    assert await daemon.post_update("guarded", None, update) == 401
    assert await daemon.post_update("guarded", "wrong-secret", update) == 401
    assert await daemon.post_update("guarded", secret, b"{not json") == 400
    assert await daemon.post_update("guarded", secret, b'{"message": {}}') == 400
    assert await daemon.post_update("guarded", secret, b'{"update_id": true}') == 400
    assert await daemon.post_update("guarded", secret, b"[1, 2]") == 400
    too_big = json.dumps(make_text_update(2, 5, "x" * (1 << 20))).encode()
    assert await daemon.post_update("guarded", secret, too_big) == 413
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{daemon.router_url}/healthz") as resp,
    ):
        assert resp.status == 200
    # Nothing was buffered, nothing woken: no agent ever called the Bot API.
    status, buffer = await daemon.api("GET", "/v1/tenants/guarded/buffer")
    assert (status, buffer) == (200, {"pending": 0, "dead_letters": 0})
    assert (await daemon.tenant("guarded"))["status"] == "idle"
    assert telegram.calls(method="getMe") == []
    assert not (daemon.data_dir / "agents").exists() or not any(
        (daemon.data_dir / "agents").iterdir()
    )
    status, metrics = await daemon.api("GET", "/metrics")
    for code, count in (("400", 5), ("401", 2), ("404", 1), ("413", 1)):
        assert f'otm_webhook_requests_total{{status="{code}"}} {count}.0' in metrics


async def test_poison_update_is_dead_lettered_and_does_not_block(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    # The router accepts 3 MB, the agent only 1 MiB: the agent rejects that
    # update with 413 every time, which must not block the tenant forever.
    daemon = await start_daemon(OTM_MAX_BODY_BYTES=str(3 << 20))
    secret = await daemon.create_tenant("poison", "1102:p")
    await daemon.send_text("poison", secret, 1, 6, "before")
    await daemon.send_text("poison", secret, 2, 6, "y" * (3 << 19))
    await daemon.send_text("poison", secret, 3, 6, "after")

    async def two_replies() -> bool:
        return len([t for t in replies(telegram, "1102:p", 6) if t != STARTING_NOTICE]) >= 2

    await eventually(two_replies, REPLY_TIMEOUT, "replies around the poison update")
    texts = [t for t in replies(telegram, "1102:p", 6) if t != STARTING_NOTICE]
    assert texts == ["echo: before (#1)", "echo: after (#2)"]
    status, buffer = await daemon.api("GET", "/v1/tenants/poison/buffer")
    assert (status, buffer) == (200, {"pending": 0, "dead_letters": 1})
    status, dead = await daemon.api("GET", "/v1/tenants/poison/dead-letters")
    assert status == 200
    [item] = dead["items"]
    assert sorted(item) == ["at_ms", "attempts", "id", "reason", "update", "update_id"]
    assert item["update_id"] == 2
    assert item["reason"] == "HTTP 413"
    assert item["attempts"] == 5
    assert item["update"]["message"]["text"].startswith("yyy")


async def test_suspended_tenant_buffers_until_resumed(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("held", "1103:h")
    status, body = await daemon.api("POST", "/v1/tenants/held/suspend")
    assert status == 200 and body["status"] == "suspended"
    for n in (1, 2):
        await daemon.send_text("held", secret, n, 8, f"s{n}")
    status, body = await daemon.api("POST", "/v1/tenants/held/wake?wait=true")
    assert status == 409, body
    status, buffer = await daemon.api("GET", "/v1/tenants/held/buffer")
    assert buffer["pending"] == 2
    assert (await daemon.tenant("held"))["status"] == "suspended"
    assert telegram.calls("1103:h", "getMe") == []

    status, body = await daemon.api("POST", "/v1/tenants/held/resume")
    assert status == 200
    sent = await telegram.wait_for_messages("1103:h", 3, REPLY_TIMEOUT, chat_id=8)
    assert [m.text for m in sent] == [STARTING_NOTICE, "echo: s1 (#1)", "echo: s2 (#2)"]


async def test_deleted_tenant_is_unknown_at_once_and_its_buffer_dropped(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("doomed", "1105:d")
    status, _ = await daemon.api("POST", "/v1/tenants/doomed/suspend")
    assert status == 200
    for n in (1, 2):
        await daemon.send_text("doomed", secret, n, 8, f"d{n}")  # also warms the router cache
    status, _ = await daemon.api("DELETE", "/v1/tenants/doomed")
    assert status == 204
    # The "deleted" event reached the router's cache: no TTL wait, no wake.
    assert await daemon.post_update("doomed", secret, make_text_update(3, 8, "late")) == 404
    client = aioredis.Redis.from_url(daemon.redis_url)
    try:

        async def purged() -> bool:
            return not await client.exists(buffer_key("doomed"))

        await eventually(purged, REPLY_TIMEOUT, "the deleted tenant's buffer to be dropped")
        assert not await client.sismember(PENDING_KEY, "doomed")
    finally:
        await client.aclose()
    assert telegram.calls("1105:d", "getMe") == []


async def test_failed_wakes_mark_tenant_failed_and_resume_delivers(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    # A bot token OpenClaw cannot use: every wake fails before the agent starts. The API
    # refuses such a token now, so it is planted in the registry (as a record written by
    # an older version would hold it).
    status, _ = await daemon.api("PATCH", "/v1/config", json={"max_wake_attempts": 2})
    assert status == 200
    secret = await daemon.create_tenant("flaky", "1103:flaky")
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "registry.sqlite3")) as db, db:
        db.execute(
            "UPDATE tenants SET record = json_set(record, '$.bot_token', 'no-colon-token') "
            "WHERE tenant_id = 'flaky'"
        )
    await daemon.send_text("flaky", secret, 1, 4, "wait for me")

    async def failed() -> bool:
        return (await daemon.tenant("flaky"))["status"] == "failed"

    await eventually(failed, REPLY_TIMEOUT, "tenant failed after 2 wake attempts")
    tenant = await daemon.tenant("flaky")
    assert "wake failed (2/2)" in tenant["status_reason"]
    assert "bot token" in tenant["status_reason"]
    status, buffer = await daemon.api("GET", "/v1/tenants/flaky/buffer")
    assert buffer["pending"] == 1  # never dropped

    status, _ = await daemon.api("PATCH", "/v1/tenants/flaky", json={"bot_token": "1104:ok"})
    assert status == 200
    # PATCHing the token re-registered the webhook with the same secret.
    assert telegram.webhooks["1104:ok"].secret_token == secret
    status, body = await daemon.api("POST", "/v1/tenants/flaky/resume")
    assert status == 200 and body["status"] == "idle"
    sent = await telegram.wait_for_messages("1104:ok", 2, REPLY_TIMEOUT, chat_id=4)
    assert [m.text for m in sent] == [STARTING_NOTICE, "echo: wait for me (#1)"]
    status, events = await daemon.api("GET", "/v1/tenants/flaky/events")
    kinds = [e["kind"] for e in events["items"]]
    assert kinds.count("wake_failed") == 1 and "failed" in kinds and "running" in kinds


async def test_redis_restart_keeps_buffered_updates(
    data_dir: Path, tmp_path: Path, telegram: FakeTelegram
) -> None:
    redis_dir = tmp_path / "durable-redis"
    server = EmbeddedRedis(redis_dir, durable=True)
    await server.astart()
    daemon = Daemon(data_dir, server.url, telegram)
    try:
        await daemon.start()
        secret = await daemon.create_tenant("durable", "1106:r")
        status, _ = await daemon.api("POST", "/v1/tenants/durable/suspend")
        assert status == 200
        for n in (1, 2, 3):
            await daemon.send_text("durable", secret, n, 8, f"r{n}")
        await server.astop()  # acked to Telegram, so Redis is their only home
        assert await daemon.post_update("durable", secret, make_text_update(4, 8, "x")) == 503
        server = EmbeddedRedis(redis_dir, port=server.port, durable=True)
        await server.astart()
        await daemon.send_text("durable", secret, 4, 8, "r4")
        status, body = await daemon.api("POST", "/v1/tenants/durable/resume")
        assert status == 200, body
        sent = await telegram.wait_for_messages("1106:r", 5, REPLY_TIMEOUT, chat_id=8)
        assert [m.text for m in sent][1:] == [f"echo: r{n} (#{n})" for n in (1, 2, 3, 4)]
    finally:
        await daemon.stop()
        await server.astop()
