"""Upgrade: updates an older release buffered under the old key names reach the agent after
the upgraded daemon starts (it renames the keys before it serves), exactly once and in order;
a late Telegram retry of one of them is still recognised as a duplicate."""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import agent_update_log, replies
from tests.support.daemon_fixtures import DaemonFactory

REPLY_TIMEOUT = 30.0


async def seed_old_layout(redis_url: str, tenant_id: str, update_ids: list[int]) -> None:
    """What an older release left behind: the buffer, dedupe markers and pending index under
    ``otm:buf:<id>``, ``otm:seen:<id>:<u>`` and ``otm:pending``."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for n in update_ids:
            body = json.dumps(make_text_update(n, 21, f"old{n}")).encode()
            now_ms = int(time.time() * 1000)
            await client.xadd(f"otm:buf:{tenant_id}", {"u": n, "b": body, "t": now_ms})
            await client.set(f"otm:seen:{tenant_id}:{n}", "1", px=25 * 3600 * 1000)
        await client.sadd("otm:pending", tenant_id)
    finally:
        await client.aclose()


async def test_updates_buffered_by_an_older_release_are_delivered_after_upgrade(
    start_daemon: DaemonFactory, redis_url: str, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon()
    secret = await daemon.create_tenant("legacy", "1301:legacy")
    await daemon.stop()
    await seed_old_layout(redis_url, "legacy", [1, 2, 3])

    daemon = await start_daemon()  # the "upgraded" daemon: migrates, then serves
    sent = await telegram.wait_for_messages("1301:legacy", 4, REPLY_TIMEOUT, chat_id=21)
    assert [m.text for m in sent][1:] == [f"echo: old{n} (#{n})" for n in (1, 2, 3)]
    # A retry of an update delivered before the upgrade: the migrated marker drops it.
    await daemon.send_text("legacy", secret, 2, 21, "old2")
    await daemon.send_text("legacy", secret, 4, 21, "new4")
    await telegram.wait_for_messages("1301:legacy", 5, REPLY_TIMEOUT, chat_id=21)
    status, _ = await daemon.api("POST", "/v1/tenants/legacy/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "legacy") == [1, 2, 3, 4]
    assert replies(telegram, "1301:legacy", 21)[-1] == "echo: new4 (#4)"
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert [k async for k in client.scan_iter("otm:buf:*")] == []
        assert not await client.exists("otm:pending")
    finally:
        await client.aclose()
