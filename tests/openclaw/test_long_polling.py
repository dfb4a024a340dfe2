"""A polling tenant on a real OpenClaw gateway, with Telegram as strict as the real one.

The tenant has no public HTTPS URL: Telegram (the fake, in strict webhook mode) refuses a
``setWebhook`` of the router's ``http://`` URL with 400, which OpenClaw does not retry: it shuts
its webhook listener and the tenant would never get an update. The daemon renders the agent's
``apiRoot`` as its own Bot API relay, which answers ``setWebhook`` itself and forwards the rest;
so: update held by Telegram → the daemon's ``getUpdates`` → buffer → cold wake → OpenClaw's
webhook listener → stub LLM (through the model gateway) → ``sendMessage`` through the relay →
Telegram. A second message reaches the running gateway the same way.

Needs ``.tools/openclaw``; skipped otherwise. One gateway boot (30-65 s on 2 cores) and two
turns: about 1-2 minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from otm.devtools.stub_llm import StubLLM
from tests.e2e.harness import Daemon
from tests.support.openclaw import (
    BOOT_TIMEOUT_S,
    TURN_TIMEOUT_S,
    EchoChat,
    openclaw_tier_marks,
    real_gateway_env,
)
from tests.support.polling import eventually

pytestmark = openclaw_tier_marks()

TENANT = "ocpoll"
BOT_TOKEN = "5252:fakeOpenclawPollingToken"
CHAT = 333


async def test_a_polling_tenant_on_real_openclaw_gets_its_messages_and_replies(
    own_redis: str, data_dir: Path
) -> None:
    async with (
        FakeTelegram(host="127.0.0.1", port=0, strict_webhooks=True) as telegram,
        StubLLM(host="127.0.0.1", port=0) as llm,
    ):
        daemon = Daemon(
            data_dir,
            own_redis,
            telegram,
            OTM_INGRESS="polling",
            OTM_POLL_TIMEOUT_S="2",
            **real_gateway_env(llm.base_url, BOOT_TIMEOUT_S),
        )
        chat = EchoChat(telegram, BOT_TOKEN, CHAT, daemon.log_tail)
        try:
            await daemon.start()
            status, body = await daemon.api(
                "POST", "/v1/tenants", json={"tenant_id": TENANT, "bot_token": BOT_TOKEN}
            )
            assert status == 201, body

            # 1. Held by Telegram, fetched by the daemon's poller: the cold wake follows.
            telegram.inject_update(BOT_TOKEN, make_text_update(9001, CHAT, "hello by polling"))
            first = await chat.reply(1, BOOT_TIMEOUT_S + TURN_TIMEOUT_S)
            assert first.startswith("echo: ") and "hello by polling" in first
            [config_path] = (data_dir / "agents" / TENANT).glob("*/openclaw.json")
            channel = json.loads(config_path.read_text())["channels"]["telegram"]
            assert channel["apiRoot"].endswith(f"/tenants/{TENANT}/telegram")
            assert channel["webhookUrl"].startswith("http://")  # what Telegram would refuse
            # OpenClaw's own Bot API calls reached Telegram through the relay, except the
            # webhook registration, which the relay answered.
            assert telegram.calls(BOT_TOKEN, "getMe")
            assert not telegram.calls(BOT_TOKEN, "setWebhook")
            assert BOT_TOKEN not in telegram.webhooks

            # 2. The running gateway gets the next one the same way.
            telegram.inject_update(BOT_TOKEN, make_text_update(9002, CHAT, "and once more"))
            second = await chat.reply(2)
            assert "and once more" in second
            await eventually(
                lambda: not telegram.pending_updates(BOT_TOKEN), 10, "both updates confirmed"
            )
            assert BOT_TOKEN.split(":", 1)[1] not in daemon.log_path.read_text()
        finally:
            await daemon.stop(timeout=90)
