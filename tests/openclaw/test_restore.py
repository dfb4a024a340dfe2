"""Point-in-time restore of a real OpenClaw gateway: the gateway starts on the older snapshot.

The daemon (local runtime) runs the pinned gateway with the stub LLM behind the model
gateway; the stub's reply counts the user turns OpenClaw sent it, i.e. the conversation
history in OpenClaw's own SQLite state. One turn, sleep (snapshot A: one turn of history), a
second turn on the restored state (two turns), then `restore` to A: the daemon sleeps the
gateway (saving the two-turn state into the history), makes A the state and wakes a new
gateway on it. Its next reply sees one prior turn, not two: it started on A.

Needs ``.tools/openclaw``; skipped otherwise. Three gateway boots (30-65 s each on a
2-core machine) and three turns: about 3-5 minutes.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.e2e.harness import Daemon, end_orphan_agents
from tests.support.openclaw import (
    BOOT_TIMEOUT_S,
    EchoChat,
    openclaw_tier_marks,
    real_gateway_env,
)
from tests.support.servers import telegram_and_llm

pytestmark = openclaw_tier_marks(timeout_s=720)

TENANT = "ocpitr"
BOT_TOKEN = "5252:fake-openclaw-restore-token"
CHAT = 333
RESTORE_TIMEOUT_S = 300.0
"""The restore answers once the new gateway runs: a drain, a save and a boot."""


async def test_restore_starts_a_real_gateway_on_the_older_snapshot(
    own_redis: str, data_dir: Path
) -> None:
    async with telegram_and_llm() as (telegram, llm):
        daemon = Daemon(
            data_dir, own_redis, telegram, **real_gateway_env(llm.base_url, BOOT_TIMEOUT_S)
        )
        chat = EchoChat(telegram, BOT_TOKEN, CHAT, daemon.log_tail)

        try:
            await daemon.start()
            secret = await daemon.create_tenant(TENANT, BOT_TOKEN)
            await daemon.send_text(TENANT, secret, 8001, CHAT, "remember the first thing")
            assert (await chat.reply(1)).endswith("(prior user turns: 0)")
            status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
            assert status == 200, body
            status, body = await daemon.api("GET", f"/v1/tenants/{TENANT}/snapshots")
            assert status == 200, body
            [snapshot_a] = body["items"]

            await daemon.send_text(TENANT, secret, 8002, CHAT, "and the second thing")
            assert (await chat.reply(2)).endswith("(prior user turns: 1)")

            status, body = await daemon.api(
                "POST",
                f"/v1/tenants/{TENANT}/restore",
                json={"snapshot": snapshot_a["key"]},
                timeout=aiohttp.ClientTimeout(total=RESTORE_TIMEOUT_S),
            )
            assert status == 200, (body, daemon.log_tail())
            assert body["tenant"]["status"] == "running"
            status, body = await daemon.api("GET", f"/v1/tenants/{TENANT}/snapshots")
            assert [s["trigger"] for s in body["items"]] == ["restore", "sleep", "sleep"]

            await daemon.send_text(TENANT, secret, 8003, CHAT, "what do you remember")
            third = await chat.reply(3)
            assert "what do you remember" in third
            assert third.endswith("(prior user turns: 1)"), third
        finally:
            await daemon.stop(timeout=90)
            end_orphan_agents(data_dir)
