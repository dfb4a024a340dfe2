"""End to end against a real OpenClaw gateway (npm openclaw@2026.9.6), fully on loopback.

Needs ``scripts/install-openclaw.sh`` (Node 24 and OpenClaw from npm into ``.tools/openclaw``);
skipped otherwise. Run alone: ``pytest -m openclaw tests/openclaw``. A gateway takes about 1 GB
of RAM and about 30 s to become ready on a 2-core machine (first turn: another 15-20 s).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import aiohttp

from daemon.agent.openclaw_config import ModelProvider, render_openclaw_config
from otm.devtools.fake_telegram import make_text_update
from tests.support.agent_stub import SECRET_HEADER, free_port
from tests.support.openclaw import OpenClawGateway, openclaw_tier_marks
from tests.support.servers import telegram_and_llm

pytestmark = openclaw_tier_marks(300)

CHAT = 111
BOT_TOKEN = "4242:fake-openclaw-token"
SECRET = "oc-webhook-secret"


async def test_real_gateway_answers_a_webhook_update_through_the_fake_bot_api(
    tmp_path: Path,
) -> None:
    async with (
        telegram_and_llm() as (tg, llm),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        home = tmp_path / "home"
        webhook_port, gateway_port = free_port(), free_port()
        config = render_openclaw_config(
            tenant_id="oc1",
            bot_token=BOT_TOKEN,
            webhook_url="http://127.0.0.1:9/tg/oc1",
            webhook_secret=SECRET,
            webhook_host="127.0.0.1",
            webhook_port=webhook_port,
            webhook_path="/telegram-webhook",
            api_root=tg.base_url,
            gateway_port=gateway_port,
            gateway_bind="loopback",
            gateway_token="oc-gateway-token",
            hooks_token="oc-hooks-token",
            workspace_dir=str(home / ".openclaw" / "workspace"),
            model_provider=ModelProvider(
                name="stub", base_url=llm.base_url, model_id="stub-model", api_key="stub-key"
            ),
            dm_policy="open",
        )
        # Test-only: keep the gateway's file log out of the shared /tmp/openclaw.
        config["logging"] = {"file": str(tmp_path / "openclaw-file.log")}
        gateway = OpenClawGateway(home, config, tmp_path / "gateway.log")
        spawned = time.monotonic()
        await gateway.start()
        try:
            # Measured here: ready after 28 s on an idle 2-core machine, 65 s under a load of 6.
            await gateway.wait_ready(http, timeout_s=120)
            ready_s = time.monotonic() - spawned

            # OpenClaw registered its webhook with the fake Bot API by itself.
            hook = tg.webhooks[BOT_TOKEN]
            assert (hook.url, hook.secret_token) == ("http://127.0.0.1:9/tg/oc1", SECRET)

            webhook = f"http://127.0.0.1:{webhook_port}/telegram-webhook"
            update = make_text_update(1001, CHAT, "hello from otm")
            async with http.post(
                webhook, json=update, headers={SECRET_HEADER: "wrong"}
            ) as response:
                assert response.status == 401
            posted = time.monotonic()
            async with http.post(webhook, json=update, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 200
                assert response.headers["x-openclaw-delivery-accepted"] == "durable"

            # Measured: the first reply 18 s after the POST (29 s under load).
            [reply] = await tg.wait_for_messages(BOT_TOKEN, 1, timeout=60, chat_id=CHAT)
            reply_s = time.monotonic() - posted
            assert reply.params["chat_id"] == str(CHAT)
            text = html.unescape(reply.text)
            assert text.startswith("echo: ")
            assert "hello from otm" in text
            assert text.endswith("(prior user turns: 0)")
            assert llm.requests
            assert all(r.had_authorization for r in llm.requests)
            print(f"openclaw ready after {ready_s:.1f}s; reply {reply_s:.1f}s after the POST")
        finally:
            stopping = time.monotonic()
            exit_code = await gateway.stop(timeout_s=30)
            print(f"openclaw stopped in {time.monotonic() - stopping:.1f}s, exit {exit_code}")
        assert exit_code == 0, gateway.log_text()[-4000:]
