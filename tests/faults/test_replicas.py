"""Two daemon replicas race on the same tenants: one Redis, one registry, one data dir.
Telegram's deliveries (and its retries) land on either replica. At most one agent per
tenant at any moment, and every update reaches it exactly once."""

from __future__ import annotations

import asyncio
import random
import signal

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import agent_update_log
from tests.faults.support import AgentCensus, TelegramSender, wait_all_answered
from tests.support.daemon_fixtures import DaemonFactory

SEED = 19
PER_TENANT = 15
REPLY_TIMEOUT = 45.0


async def test_two_replicas_one_agent_per_tenant_exactly_once(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    rng = random.Random(SEED)
    first = await start_daemon()
    second = await start_daemon()
    replicas = [first, second]
    tenants = {f"rp{n}": f"56{n}:replica" for n in range(4)}
    secrets = {t: await first.create_tenant(t, token) for t, token in tenants.items()}
    census = AgentCensus(first.data_dir, list(tenants))
    census.start()
    try:
        async with TelegramSender(lambda: rng.choice(replicas)) as telegram_side:

            async def stream(tenant_id: str) -> None:
                for n in range(1, PER_TENANT + 1):
                    await telegram_side.send(
                        tenant_id, secrets[tenant_id], n, 6, f"{tenant_id}-{n}"
                    )
                    if rng.random() < 0.4:  # a retry of the same update hits the other replica
                        update = make_text_update(n, 6, f"{tenant_id}-{n}")
                        other = rng.choice(replicas)
                        status = await telegram_side.post(
                            other.router_url, tenant_id, secrets[tenant_id], update
                        )
                        assert status == 200
                    await asyncio.sleep(rng.uniform(0, 0.03))

            await asyncio.gather(*(stream(t) for t in tenants))

        await wait_all_answered(telegram, tenants, 6, PER_TENANT, REPLY_TIMEOUT)
    finally:
        await census.stop()
    assert census.peak == dict.fromkeys(tenants, 1), census.peak
    # Each replica stops its own agents (with their final state sync), both at once:
    # the harness's stop() ends every agent left in the data dir afterwards, which
    # must not catch the other replica's agents before their final sync.
    procs = [r.proc for r in replicas if r.proc is not None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        await asyncio.gather(*(proc.wait() for proc in procs))
    for replica in replicas:
        await replica.stop()
    for tenant_id in tenants:
        assert agent_update_log(first.data_dir, tenant_id) == list(range(1, PER_TENANT + 1))
