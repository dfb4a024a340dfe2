"""Telegram retry storms: the same update_id many times, concurrently, before and
after its delivery; every copy is answered 200 and delivered once."""

from __future__ import annotations

import asyncio
import random
import re

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import Daemon, agent_update_log
from tests.faults.support import TelegramSender, echoes
from tests.support.polling import eventually

SEED = 17
DISTINCT = 6
COPIES = 25
REPLY_TIMEOUT = 30.0


async def test_retry_storm_delivers_each_update_once(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    rng = random.Random(SEED)
    secret = await daemon.create_tenant("storm", "550:storm")
    updates = {n: make_text_update(n, 4, f"u{n}") for n in range(1, DISTINCT + 1)}
    async with TelegramSender(lambda: daemon) as telegram_side:

        async def storm(copies: int) -> list[int]:
            posts = [n for n in updates for _ in range(copies)]
            rng.shuffle(posts)
            return await asyncio.gather(
                *(telegram_side.post(daemon.router_url, "storm", secret, updates[n]) for n in posts)
            )

        first = await storm(COPIES)  # while the tenant wakes up
        assert first == [200] * (DISTINCT * COPIES)

        async def all_answered() -> bool:
            return len(echoes(telegram, "550:storm", 4)) >= DISTINCT

        await eventually(all_answered, REPLY_TIMEOUT, "one answer per update")
        second = await storm(COPIES // 5)  # late retries, after delivery
        assert second == [200] * (DISTINCT * (COPIES // 5))
    await asyncio.sleep(0.5)  # a wrongly accepted retry would be delivered by now
    answers = echoes(telegram, "550:storm", 4)
    assert sorted(re.sub(r" \(#\d+\)$", "", a) for a in answers) == sorted(
        f"echo: u{n}" for n in updates
    )
    status, metrics = await daemon.api("GET", "/metrics")
    assert f"otm_updates_buffered_total {float(DISTINCT)}" in metrics
    total = DISTINCT * (COPIES + COPIES // 5)
    assert f"otm_updates_duplicate_total {float(total - DISTINCT)}" in metrics
    status, body = await daemon.api("POST", "/v1/tenants/storm/sleep")
    assert status == 200, body
    log = agent_update_log(daemon.data_dir, "storm")
    assert sorted(log) == list(updates)  # each once (arrival order may interleave)
