"""A fleet image rollout with a real OpenClaw gateway: the pinned version under two image
tags (locally an image is a command, setting ``agent_image_commands``), the conversation
history carried over the switch.

Needs ``.tools/openclaw``; skipped otherwise. Two gateway boots (30-65 s each on 2 cores)
and two turns: about 2-3 minutes.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.e2e.harness import Daemon, end_orphan_agents
from tests.support.openclaw import (
    BOOT_TIMEOUT_S,
    TURN_TIMEOUT_S,
    EchoChat,
    gateway_command,
    openclaw_tier_marks,
    real_gateway_env,
)
from tests.support.polling import eventually
from tests.support.servers import telegram_and_llm

pytestmark = openclaw_tier_marks()

TENANT = "ocroll"
BOT_TOKEN = "5252:fake-openclaw-rollout-token"
CHAT = 333
NEW_TAG = "ghcr.io/openclaw/openclaw:rollout-test"


async def test_rollout_moves_a_real_gateway_to_a_new_tag_with_its_history(
    own_redis: str, data_dir: Path
) -> None:
    async with telegram_and_llm() as (telegram, llm):
        env = real_gateway_env(llm.base_url, BOOT_TIMEOUT_S)
        env["OTM_AGENT_IMAGE_COMMANDS"] = shlex.join([f"{NEW_TAG}={gateway_command()}"])
        env["OTM_ROLLOUT_TICK_S"] = "0.5"
        daemon = Daemon(data_dir, own_redis, telegram, **env)
        chat = EchoChat(telegram, BOT_TOKEN, CHAT, daemon.log_tail)
        try:
            await daemon.start()
            secret = await daemon.create_tenant(TENANT, BOT_TOKEN)
            await daemon.send_text(TENANT, secret, 9001, CHAT, "before the rollout")
            first = await chat.reply(1, BOOT_TIMEOUT_S + TURN_TIMEOUT_S)
            assert first.endswith("(prior user turns: 0)")
            assert (await daemon.tenant(TENANT))["image"] is None
            status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
            assert status == 200, body

            status, body = await daemon.api(
                "POST", "/v1/rollout", json={"image": NEW_TAG, "steps": "100%"}
            )
            assert status == 201, body

            async def moved() -> bool:
                return (await daemon.tenant(TENANT))["image"] == NEW_TAG

            await eventually(moved, 30, "the tenant moved to the new tag", interval=0.2)
            await daemon.send_text(TENANT, secret, 9002, CHAT, "after the rollout")
            second = await chat.reply(2, BOOT_TIMEOUT_S + TURN_TIMEOUT_S)
            # The gateway on the new tag read the history the old one saved.
            assert "after the rollout" in second and second.endswith("(prior user turns: 1)")

            async def completed() -> bool:
                status, body = await daemon.api("GET", "/v1/rollout")
                assert status == 200, body
                assert body["rollout"]["status"] in ("running", "completed"), body
                return bool(body["rollout"]["status"] == "completed")

            await eventually(completed, 30, "the rollout to complete", interval=0.2)
            log = (data_dir / "agents" / TENANT / "agent.log").read_text(errors="replace")
            assert f"image {NEW_TAG})" in log
        finally:
            await daemon.stop(timeout=90)
            end_orphan_agents(data_dir)
