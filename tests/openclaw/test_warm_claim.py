"""A message to a sleeping tenant with history is answered by a pre-booted real OpenClaw
gateway, bound at claim (its agent and workspace restored into it, one atomic config rewrite
hot-reloaded), and the reply shows the history survived.

Through a real ``python -m daemon`` (local runtime, the pinned gateway as agent command, the
stub LLM, the fake Bot API): one cold wake gives the tenant a conversation and a snapshot;
then ``warm_pool_target`` 1 pre-boots a gateway, and the next message is bound to exactly
that process (no second gateway is started for the tenant).

Needs ``.tools/openclaw``; skipped otherwise. Two gateway boots (15-65 s each) and two turns.
"""

from __future__ import annotations

import time
from pathlib import Path

from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid
from daemon.adapters.local.warm_pool import WARM_DIR
from tests.e2e.harness import Daemon
from tests.support.openclaw import BOOT_TIMEOUT_S, EchoChat, openclaw_tier_marks, real_gateway_env
from tests.support.polling import eventually
from tests.support.servers import telegram_and_llm

pytestmark = openclaw_tier_marks()

TENANT = "ocwarm"
BOT_TOKEN = "6262:fake-openclaw-warm-token"
CHAT = 333


async def test_warm_claim_of_a_real_gateway_keeps_the_tenants_history(
    own_redis: str, data_dir: Path
) -> None:
    timings: dict[str, float] = {}
    async with telegram_and_llm() as (telegram, llm):
        daemon = Daemon(
            data_dir,
            own_redis,
            telegram,
            **real_gateway_env(llm.base_url, BOOT_TIMEOUT_S, model_api_key=None),
        )
        chat = EchoChat(telegram, BOT_TOKEN, CHAT, daemon.log_tail)
        try:
            await daemon.start()
            secret = await daemon.create_tenant(TENANT, BOT_TOKEN)

            # 1. Cold: the tenant gets a conversation, then sleeps (its state is saved).
            await daemon.send_text(TENANT, secret, 8001, CHAT, "remember the lighthouse")
            first = await chat.reply(1)
            assert first.endswith("(prior user turns: 0)"), first
            status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
            assert status == 200 and body["status"] == "idle", body

            # 2. One gateway pre-boots with no tenant in it.
            status, _ = await daemon.api("PATCH", "/v1/config", json={"warm_pool_target": 1})
            assert status == 200

            async def pool_ready() -> bool:
                _, body = await daemon.api("GET", "/v1/status")
                return bool(body["warm_pool"]["ready"] == 1)

            booting = time.monotonic()
            await eventually(pool_ready, BOOT_TIMEOUT_S, "a warm gateway ready")
            timings["warm boot"] = time.monotonic() - booting
            [warm_pid_file] = (data_dir / WARM_DIR).glob(f"*/{PID_FILE}")
            warm_name = warm_pid_file.parent.name
            warm_pid = recorded_agent_pid(warm_pid_file)
            assert warm_pid is not None

            # 3. The next message is answered by that process, with the history.
            posted = time.monotonic()
            await daemon.send_text(TENANT, secret, 8002, CHAT, "what did I ask you to remember?")
            second = await chat.reply(2)
            timings["message to first reply (warm, with history)"] = time.monotonic() - posted
            assert "what did I ask you to remember?" in second
            assert second.endswith("(prior user turns: 1)"), second
            tenant = await daemon.tenant(TENANT)
            assert tenant["pod_name"] == warm_name, daemon.log_tail(200)
            [tenant_pid_file] = (data_dir / "agents" / TENANT).glob(f"*/{PID_FILE}")
            assert recorded_agent_pid(tenant_pid_file) == warm_pid  # no second gateway
            hook = telegram.webhooks[BOT_TOKEN]
            assert (hook.url, hook.secret_token) == (f"http://127.0.0.1:9/tg/{TENANT}", secret)
            # No refill beside the bound gateway's turns, and none needed after this test.
            await daemon.api("PATCH", "/v1/config", json={"warm_pool_target": 0})

            posted = time.monotonic()
            await daemon.send_text(TENANT, secret, 8003, CHAT, "and now?")
            third = await chat.reply(3)
            timings["second reply (bound)"] = time.monotonic() - posted
            assert third.endswith("(prior user turns: 2)"), third
            assert len(chat.replies()) == 3  # nothing replayed

            # 4. Sleep saves the bound gateway's state like a cold agent's.
            status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
            assert status == 200 and body["status"] == "idle", body
            assert not (data_dir / WARM_DIR / warm_name).exists()
        finally:
            await daemon.stop(timeout=90)
            print("\n" + "\n".join(f"{k}: {v:.1f}s" for k, v in timings.items()))
