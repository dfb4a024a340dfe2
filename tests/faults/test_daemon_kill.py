"""Daemon SIGKILL during wakes and during deliveries: after a restart every update is
delivered exactly once (the agents' persisted update logs), in order."""

from __future__ import annotations

import asyncio
import random

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, agent_update_log
from tests.faults.support import (
    AgentCensus,
    TelegramSender,
    first_answers,
    live_agents,
    sleep_and_check_each_update_recorded_once,
    wait_all_answered,
)
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

SEED = 7
REPLY_TIMEOUT = 45.0


async def _sleep_all(daemon: Daemon, tenants: list[str]) -> None:
    for tenant_id in tenants:
        status, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/sleep")
        assert status == 200, body


async def test_sigkill_during_wakes(start_daemon: DaemonFactory, telegram: FakeTelegram) -> None:
    # A slow boot keeps every wake in progress long enough to be killed in the middle.
    slow = {"OTM_AGENT_BOOT_DELAY_S": "1.5"}
    daemon = await start_daemon(**slow)
    tenants = {f"wk{n}": f"51{n}:wake" for n in range(3)}
    secrets = {t: await daemon.create_tenant(t, token) for t, token in tenants.items()}
    current: list[Daemon] = [daemon]
    census = AgentCensus(daemon.data_dir, list(tenants))
    census.start()
    try:
        async with TelegramSender(lambda: current[0]) as telegram_side:
            for tenant_id in tenants:
                await telegram_side.send(tenant_id, secrets[tenant_id], 1, 7, f"{tenant_id}-1")

            async def all_provisioning() -> bool:
                states = [(await daemon.tenant(t))["status"] for t in tenants]
                return all(s == "provisioning" for s in states)

            await eventually(all_provisioning, 10, "three wakes in progress")
            await daemon.kill()  # agents are booting; wake locks and records left mid-way
            current[0] = daemon = await start_daemon(**slow)
            for tenant_id in tenants:
                await telegram_side.send(tenant_id, secrets[tenant_id], 2, 7, f"{tenant_id}-2")

            async def all_answered() -> bool:
                return all(
                    first_answers(telegram, token, 7) == [f"echo: {t}-1", f"echo: {t}-2"]
                    for t, token in tenants.items()
                )

            await eventually(all_answered, REPLY_TIMEOUT, "answers after the restart")
        for tenant_id in tenants:
            assert len(live_agents(daemon.data_dir, tenant_id)) == 1
        await _sleep_all(daemon, list(tenants))
    finally:
        await census.stop()
    assert census.peak == dict.fromkeys(tenants, 1)
    for tenant_id in tenants:
        assert agent_update_log(daemon.data_dir, tenant_id) == [1, 2], tenant_id
        assert (await daemon.tenant(tenant_id))["status"] == "idle"


async def test_repeated_sigkill_during_deliveries(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    rng = random.Random(SEED)
    daemon = await start_daemon()
    tenants = {f"dk{n}": f"52{n}:deliver" for n in range(3)}
    secrets = {t: await daemon.create_tenant(t, token) for t, token in tenants.items()}
    per_tenant = 25
    current: list[Daemon | None] = [daemon]
    kill_after = sorted(rng.sample(range(5, per_tenant * len(tenants) - 5), 3))

    async with TelegramSender(lambda: current[0]) as telegram_side:

        async def stream(tenant_id: str) -> None:
            for n in range(1, per_tenant + 1):
                await telegram_side.send(tenant_id, secrets[tenant_id], n, 9, f"{tenant_id}-{n}")
                await asyncio.sleep(rng.uniform(0, 0.03))

        streams = asyncio.gather(*(stream(t) for t in tenants))
        restarts = 0
        try:
            for threshold in kill_after:
                await telegram_side.wait_attempts(threshold, streams)
                victim, current[0] = current[0], None
                assert victim is not None
                await victim.kill()  # mid-stream: delivered, buffered, in flight
                current[0] = daemon = await start_daemon()
                restarts += 1
            await streams
        finally:
            if not streams.done():
                streams.cancel()
                await asyncio.gather(streams, return_exceptions=True)
    assert restarts == 3

    await wait_all_answered(telegram, tenants, 9, per_tenant, REPLY_TIMEOUT)
    await sleep_and_check_each_update_recorded_once(daemon, list(tenants), per_tenant)
