"""Agent stub across SIGTERM and restart: drain, spool, counter and de-duplication persistence."""

from __future__ import annotations

import asyncio

import aiohttp

from otm.devtools.agent_stub.store import read_turn_count
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.devtools.conftest import ModelRig, SpawnAgent
from tests.support.agent_stub import (
    StubTenant,
    post_update,
    wait_agent_idle,
)

CHAT = 111


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_counter_and_dedupe_survive_sigterm_and_restart(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    agent = await spawn_agent(tenant)
    await post_update(http, tenant, make_text_update(1, CHAT, "one"))
    await post_update(http, tenant, make_text_update(2, CHAT, "two"))
    await fake_tg.wait_for_messages(tenant.bot_token, 2, timeout=10)
    assert await agent.stop() == 0

    await spawn_agent(tenant)
    # Telegram retries an update it already got an ack for: acked again, not answered again.
    status, headers = await post_update(http, tenant, make_text_update(2, CHAT, "two"))
    assert (status, headers["x-openclaw-delivery-accepted"]) == (200, "durable")
    await post_update(http, tenant, make_text_update(3, CHAT, "three"))
    messages = await fake_tg.wait_for_messages(tenant.bot_token, 3, timeout=10)
    assert [m.text for m in messages] == ["echo: one (#1)", "echo: two (#2)", "echo: three (#3)"]
    assert read_turn_count(tenant.state_dir) == 3


async def wait_for_readyz_failing(
    http: aiohttp.ClientSession, tenant: StubTenant, failing: list[str]
) -> dict[str, object]:
    for _ in range(200):
        status, body = await get_json(http, f"{tenant.gateway_url}/readyz")
        if body.get("failing") == failing:
            assert status == 503
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"readyz never reported {failing}")


async def test_sigterm_drains_the_turn_in_flight_and_spools_later_updates(rig: ModelRig) -> None:
    tenant, fake_tg, stub_llm, spawn_agent, http = rig
    agent = await spawn_agent(tenant)
    stub_llm.delay_s = 2.0
    await post_update(http, tenant, make_text_update(1, CHAT, "slow one"))
    await stub_llm.wait_for_requests(1, timeout=10)
    status, activity = await get_json(http, f"{tenant.gateway_url}/otm/activity")
    assert activity["busy"] is True
    assert activity["pending_turns"] == 1

    agent.terminate()
    body = await wait_for_readyz_failing(http, tenant, ["gateway-draining"])
    assert body["ready"] is False
    assert (await get_json(http, f"{tenant.gateway_url}/healthz"))[0] == 200
    assert await get_json(http, f"{tenant.gateway_url}/startupz") == (
        503,
        {"ok": False, "status": "draining"},
    )
    # The webhook keeps acking during the drain; the update waits in the spool.
    status, headers = await post_update(http, tenant, make_text_update(2, CHAT, "during drain"))
    assert (status, headers["x-openclaw-delivery-accepted"]) == (200, "durable")

    assert await agent.wait(15) == 0
    [reply] = fake_tg.sent(tenant.bot_token)
    assert reply.text == "echo: slow one (prior user turns: 0)"
    assert len(stub_llm.requests) == 1

    stub_llm.delay_s = 0.0
    await spawn_agent(tenant)
    messages = await fake_tg.wait_for_messages(tenant.bot_token, 2, timeout=10)
    # Processed after the restart, with the history from before it.
    assert messages[1].text == "echo: during drain (prior user turns: 1)"
    activity = await wait_agent_idle(http, tenant)
    assert activity["pending_turns"] == 0
    assert activity["last_turn_at"] is not None


async def test_drain_is_bounded(rig: ModelRig) -> None:
    tenant, fake_tg, stub_llm, spawn_agent, http = rig
    agent = await spawn_agent(tenant, OTM_AGENT_DRAIN_TIMEOUT_S="0.3")
    stub_llm.delay_s = 30.0
    await post_update(http, tenant, make_text_update(1, CHAT, "never finishes"))
    await stub_llm.wait_for_requests(1, timeout=10)
    agent.terminate()
    assert await agent.wait(10) == 0
    assert "drain budget 0.3s exceeded" in agent.log_text()
    assert fake_tg.sent(tenant.bot_token) == []
