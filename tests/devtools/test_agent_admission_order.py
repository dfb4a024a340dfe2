"""Agent stub: updates spooled before admission opened keep their order with one whose webhook
call ends just as it opens (same chat, so OpenClaw would run them in arrival order)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from otm.devtools.agent_stub.config import AgentSettings
from otm.devtools.agent_stub.runtime import AgentRuntime, TelegramState
from otm.devtools.agent_stub.store import DEFAULT_AGENT_ID, AgentStore
from otm.devtools.agent_stub.turns import TurnEngine
from otm.devtools.fake_telegram import make_text_update

CHAT = 111


def settings(state_dir: Path) -> AgentSettings:
    return AgentSettings(
        state_dir=state_dir,
        config_path=state_dir / "openclaw.json",
        gateway_host="127.0.0.1",
        gateway_port=0,
        gateway_token=None,
        telegram=None,
        telegram_problem=None,
        model=None,
        hooks=None,
        agent_id=DEFAULT_AGENT_ID,
        boot_delay_s=0.0,
        drain_timeout_s=5.0,
        retry_initial_s=0.1,
        retry_max_s=0.5,
    )


async def test_an_update_accepted_as_admission_opens_waits_for_the_spooled_ones(
    tmp_path: Path,
) -> None:
    store = AgentStore(tmp_path, DEFAULT_AGENT_ID)
    await store.open()
    async with aiohttp.ClientSession() as http:
        engine = TurnEngine(
            store=store, http=http, bot=None, model=None, dm_policy=None, pairing_salt="salt"
        )
        runtime = AgentRuntime(
            settings=settings(tmp_path), store=store, engine=engine, telegram=TelegramState.STARTING
        )
        try:
            updates = {i: make_text_update(i, CHAT, f"m{i}") for i in (1, 2, 3)}
            for i in (1, 2):  # accepted while Telegram was still starting: spooled
                assert await store.accept_update(i, updates[i], 0.0)
                await runtime.on_update_accepted(i, updates[i])
            # Update 3's webhook call has written it to the spool; before its handler resumes,
            # admission opens and the spool pass starts (it awaits its read of the spool).
            assert await store.accept_update(3, updates[3], 0.0)
            runtime.telegram = TelegramState.READY
            dispatch = asyncio.create_task(runtime.dispatch_spooled())
            await asyncio.sleep(0)  # one loop step: the pass is now reading the spool
            await runtime.on_update_accepted(3, updates[3])  # the handler resumes
            async with asyncio.timeout(10):
                await dispatch
            assert await engine.wait_idle(10)
            history = await store.history(f"telegram:{CHAT}")
            assert [text for role, text in history if role == "user"] == ["m1", "m2", "m3"]
            assert runtime.pending_turns == 0
        finally:
            await engine.close()
            await store.close()
