"""Agents SIGKILLed mid-stream (twice each, at seeded moments): every update reaches
the restarted agent exactly once, in order."""

from __future__ import annotations

import asyncio
import os
import random
import signal

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.faults.support import (
    TelegramSender,
    live_agents,
    sleep_and_check_each_update_recorded_once,
    wait_all_answered,
)
from tests.support.polling import eventually

SEED = 13
PER_TENANT = 20
REPLY_TIMEOUT = 45.0


async def test_agent_crashes_lose_and_duplicate_nothing(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    rng = random.Random(SEED)
    tenants = {"ac0": "540:crash", "ac1": "541:crash"}
    secrets = {t: await daemon.create_tenant(t, token) for t, token in tenants.items()}
    kills: dict[str, list[int]] = {
        t: sorted(rng.sample(range(3, PER_TENANT - 2), 2)) for t in tenants
    }
    killed: list[int] = []
    async with TelegramSender(lambda: daemon) as telegram_side:

        async def stream(tenant_id: str) -> None:
            for n in range(1, PER_TENANT + 1):
                await telegram_side.send(tenant_id, secrets[tenant_id], n, 5, f"{tenant_id}-{n}")
                if n in kills[tenant_id]:

                    async def running() -> bool:
                        return len(live_agents(daemon.data_dir, tenant_id)) == 1

                    await eventually(running, REPLY_TIMEOUT, f"{tenant_id}'s agent")
                    for pid in live_agents(daemon.data_dir, tenant_id):
                        os.killpg(pid, signal.SIGKILL)
                        killed.append(pid)
                await asyncio.sleep(rng.uniform(0, 0.05))

        await asyncio.gather(*(stream(t) for t in tenants))
    assert len(killed) == 4

    await wait_all_answered(telegram, tenants, 5, PER_TENANT, REPLY_TIMEOUT)
    await sleep_and_check_each_update_recorded_once(daemon, list(tenants), PER_TENANT)
