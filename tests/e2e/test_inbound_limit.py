"""The router's per-tenant inbound limit: over it, Telegram gets 429 + Retry-After (and keeps
the update to retry); what was accepted is delivered, nothing over the limit is buffered."""

from __future__ import annotations

import aiohttp

from daemon.msgpath.wake import STARTING_NOTICE
from daemon.router import SECRET_HEADER
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.support.daemon_fixtures import DaemonFactory

LIMIT = 3


async def test_over_the_limit_gets_429_and_nothing_accepted_is_lost(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon(OTM_INBOUND_MESSAGES_PER_MIN=str(LIMIT))
    secret = await daemon.create_tenant("flood", "6001:flood")
    other = await daemon.create_tenant("calm", "6002:calm")
    statuses, retry_after = [], []
    async with aiohttp.ClientSession() as http:
        for n in range(1, 7):
            async with http.post(
                f"{daemon.router_url}/tg/flood",
                json=make_text_update(n, 5, f"f{n}"),
                headers={SECRET_HEADER: secret},
            ) as resp:
                statuses.append(resp.status)
                retry_after.append(resp.headers.get("Retry-After"))
    # A fixed one-minute window: the first LIMIT pass unless the minute turned mid-way.
    assert statuses.count(200) >= LIMIT and 429 in statuses, statuses
    accepted = [n for n, s in zip(range(1, 7), statuses, strict=True) if s == 200]
    for status, wait in zip(statuses, retry_after, strict=True):
        if status == 429:
            assert wait is not None and 1 <= int(wait) <= 60
    # Another tenant is not limited by this one.
    await daemon.send_text("calm", other, 1, 5, "c1")

    sent = await telegram.wait_for_messages("6001:flood", len(accepted), 30, chat_id=5)
    while len([m for m in sent if m.text != STARTING_NOTICE]) < len(accepted):
        sent = await telegram.wait_for_messages("6001:flood", len(sent) + 1, 30, chat_id=5)
    echoes = [m.text for m in sent if m.text != STARTING_NOTICE]
    assert echoes == [f"echo: f{n} (#{i})" for i, n in enumerate(accepted, 1)]
    status, buffer = await daemon.api("GET", "/v1/tenants/flood/buffer")
    assert status == 200 and buffer["pending"] == 0
