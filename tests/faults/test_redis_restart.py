"""Redis restarts under traffic: the daemon's Redis is a separate redis-server (AOF,
appendfsync always) stopped and started again on the same port and data dir, once
gracefully and once by SIGKILL. Updates acked with 200 survive; updates refused
meanwhile (503) are retried by Telegram; nothing is lost or duplicated."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from daemon.embedded_redis import EmbeddedRedis
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, agent_update_log
from tests.faults.support import TelegramSender, wait_all_answered

SEED = 11
PER_TENANT = 30
REPLY_TIMEOUT = 45.0


async def test_redis_restarts_lose_and_duplicate_nothing(
    data_dir: Path, tmp_path: Path, telegram: FakeTelegram
) -> None:
    rng = random.Random(SEED)
    redis_dir = tmp_path / "redis"
    server = EmbeddedRedis(redis_dir, durable=True)
    await server.astart()
    port = server.port
    daemon = Daemon(data_dir, server.url, telegram)
    tenants = {"rr0": "530:redis", "rr1": "531:redis"}
    try:
        await daemon.start()
        secrets = {t: await daemon.create_tenant(t, token) for t, token in tenants.items()}
        async with TelegramSender(lambda: daemon) as telegram_side:

            async def stream(tenant_id: str) -> None:
                for n in range(1, PER_TENANT + 1):
                    await telegram_side.send(
                        tenant_id, secrets[tenant_id], n, 3, f"{tenant_id}-{n}"
                    )
                    await asyncio.sleep(rng.uniform(0.01, 0.05))

            streams = asyncio.gather(*(stream(t) for t in tenants))
            try:
                for graceful in (True, False):
                    await telegram_side.wait_attempts(15 if graceful else 40, streams)
                    if graceful:
                        await server.astop()  # SIGTERM: Redis flushes and exits
                    else:
                        server.kill()  # SIGKILL: only the fsynced AOF remains
                    await asyncio.sleep(rng.uniform(0.3, 0.8))
                    server = EmbeddedRedis(redis_dir, port=port, durable=True)
                    await server.astart()
                await streams
            finally:
                if not streams.done():
                    streams.cancel()
                    await asyncio.gather(streams, return_exceptions=True)
            # While Redis was down the router said so (503), it never lied with a 200.
            assert telegram_side.non_200.get(503, 0) > 0, telegram_side.non_200

        await wait_all_answered(telegram, tenants, 3, PER_TENANT, REPLY_TIMEOUT)
        for tenant_id in tenants:
            status, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/sleep")
            assert status == 200, body
            assert agent_update_log(data_dir, tenant_id) == list(range(1, PER_TENANT + 1))
            status, buffer = await daemon.api("GET", f"/v1/tenants/{tenant_id}/buffer")
            assert buffer == {"pending": 0, "dead_letters": 0}
    finally:
        await daemon.stop()
        await server.astop()
