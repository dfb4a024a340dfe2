"""Busy-aware idle culling judged by a real OpenClaw gateway (local runtime).

A tenant whose idle timeout passes while its turn still waits on the model is not slept:
the culler asks the gateway (its ``sessions.list`` ``hasActiveRun``,
daemon/agent/openclaw_activity.py) and extends the deadline. Once the reply is out, the idle
tenant is slept.

Needs ``.tools/openclaw``; one gateway boot (30-65 s on a 2-core machine) and a slow turn.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination
from tests.e2e.harness import Daemon, end_orphan_agents
from tests.support.openclaw import (
    BOOT_TIMEOUT_S,
    openclaw_tier_marks,
    real_gateway_env,
)
from tests.support.polling import eventually
from tests.support.servers import telegram_and_llm

pytestmark = openclaw_tier_marks()

TENANT = "ocbusy"
BOT_TOKEN = "5353:fake-openclaw-busy-token"
CHAT = 333
SLOW_MODEL_S = 15.0
"""The turn's model call: far longer than the tenant's 1 s idle timeout."""


async def _status(daemon: Daemon) -> str:
    return str((await daemon.tenant(TENANT))["status"])


async def test_idle_timeout_during_a_turn_waits_for_the_turn(
    own_redis: str, data_dir: Path
) -> None:
    async with telegram_and_llm() as (telegram, llm):
        daemon = Daemon(
            data_dir,
            own_redis,
            telegram,
            **real_gateway_env(llm.base_url, BOOT_TIMEOUT_S),
        )
        registry = SqliteRegistry(data_dir / "registry.sqlite3")
        client = aioredis.Redis.from_url(own_redis)
        try:
            await daemon.start()
            secret = await daemon.create_tenant(TENANT, BOT_TOKEN)
            llm.delay_s = SLOW_MODEL_S
            await daemon.send_text(TENANT, secret, 1, CHAT, "a slow question")
            await llm.wait_for_requests(1, timeout=BOOT_TIMEOUT_S)
            assert await _status(daemon) == "running"

            # The idle timeout (1 s: below what the admin API accepts) passes mid-turn.
            await registry.update(TENANT, idle_timeout_s=1)
            await Coordination(client).publish_event(TENANT, "updated", fields=["idle_timeout_s"])

            def answered() -> bool:
                return any("a slow question" in m.text for m in telegram.sent(BOT_TOKEN, CHAT))

            while not answered():  # bounded by the turn: the stub answers after SLOW_MODEL_S
                assert await _status(daemon) == "running", "culled while its turn was running"
                await asyncio.sleep(0.5)

            # The turn is over: now the idle tenant is slept.
            async def idle() -> bool:
                return await _status(daemon) == "idle"

            await eventually(idle, 60, "the idle tenant culled after its turn")
        finally:
            await client.aclose()
            await registry.close()
            await daemon.stop(timeout=90)
            end_orphan_agents(data_dir)
