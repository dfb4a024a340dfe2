"""Agent stub startup against the fake Bot API: probes, getMe → listen → setWebhook, refusals."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from otm.devtools.fake_telegram import FakeTelegram, FaultMode
from tests.devtools.conftest import SpawnAgent
from tests.support.agent_stub import StubTenant


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_startup_sets_the_webhook_and_all_probes_pass(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    assert [c.method for c in fake_tg.calls(tenant.bot_token)][:2] == ["getMe", "setWebhook"]
    hook = fake_tg.webhooks[tenant.bot_token]
    telegram = tenant.config["channels"]["telegram"]
    assert hook.url == telegram["webhookUrl"]
    assert hook.secret_token == tenant.webhook_secret
    assert hook.allowed_updates is not None
    assert "message" in hook.allowed_updates
    for path in ("/healthz", "/health"):
        assert await get_json(http, tenant.gateway_url + path) == (
            200,
            {"ok": True, "status": "live"},
        )
    status, body = await get_json(http, tenant.gateway_url + "/startupz")
    assert status == 200
    assert isinstance(body, dict)
    assert body["status"] == "started"
    assert await get_json(http, tenant.gateway_url + "/readyz") == (
        200,
        {"ready": True, "failing": []},
    )
    async with http.get(f"http://127.0.0.1:{tenant.webhook_port}/healthz") as response:
        assert (response.status, await response.text()) == (200, "ok")


async def test_readyz_fails_on_telegram_and_webhook_stays_closed_until_get_me_works(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    fake_tg.set_fault(FaultMode.HTTP_502, token=tenant.bot_token, method="getMe")
    agent = await spawn_agent(tenant, wait_ready=False)
    # Two getMe calls prove the retry loop runs while the Bot API is failing.
    await fake_tg.wait_for_calls(tenant.bot_token, "getMe", 2, timeout=15)
    assert await get_json(http, tenant.gateway_url + "/readyz") == (
        503,
        {"ready": False, "failing": ["telegram"]},
    )
    assert (await get_json(http, tenant.gateway_url + "/healthz"))[0] == 200
    with pytest.raises(aiohttp.ClientConnectorError):
        async with http.get(f"http://127.0.0.1:{tenant.webhook_port}/healthz"):
            pass
    assert tenant.bot_token not in fake_tg.webhooks

    fake_tg.clear_faults()
    await agent.wait_ready(http)
    assert fake_tg.webhooks[tenant.bot_token].secret_token == tenant.webhook_secret


async def test_boot_delay_holds_back_the_first_bot_api_call(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    spawned_at = time.time()
    await spawn_agent(tenant, OTM_AGENT_BOOT_DELAY_S="1.0")
    first_call = fake_tg.calls(tenant.bot_token)[0]
    # A lower bound on the simulated boot, not a speed measurement.
    assert first_call.at - spawned_at >= 1.0


async def test_lan_bind_without_gateway_auth_is_refused(
    tenant: StubTenant, spawn_agent: SpawnAgent
) -> None:
    tenant.config["gateway"] = {"mode": "local", "bind": "lan", "port": tenant.gateway_port}
    tenant.write_config()
    agent = await spawn_agent(tenant, wait_ready=False)
    assert await agent.wait(15) == 1
    assert "Refusing to bind gateway to lan without auth." in agent.log_text()


async def test_webhook_without_secret_never_gets_ready(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    tenant.config["channels"]["telegram"]["webhookSecret"] = ""
    tenant.write_config()
    agent = await spawn_agent(tenant, wait_ready=False)
    readyz = await first_answer(http, tenant.gateway_url + "/readyz")
    assert readyz == (503, {"ready": False, "failing": ["telegram"]})
    # The problem is logged before the gateway port opens.
    assert "requires a non-empty secret token" in agent.log_text()
    assert fake_tg.calls() == []


async def first_answer(http: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    """Poll (bounded) until something listens at ``url``; its first answer."""
    for _ in range(300):
        try:
            return await get_json(http, url)
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answered at {url}")
