"""Agent stub hooks on the gateway port: auth, wake, agent runs delivered to Telegram."""

from __future__ import annotations

from typing import Any

import aiohttp

from otm.devtools.fake_telegram import FakeTelegram
from tests.devtools.conftest import SpawnAgent
from tests.support.agent_stub import StubTenant


async def hook(
    http: aiohttp.ClientSession,
    tenant: StubTenant,
    name: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    query: str = "",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    if headers is None:
        headers = {"Authorization": f"Bearer {tenant.hooks_token}"}
    url = f"{tenant.gateway_url}/hooks/{name}{query}"
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


async def test_hook_auth_and_routes(
    tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    wake = {"text": "check mail", "mode": "now"}
    assert (await hook(http, tenant, "wake", wake, headers={}))[0] == 401
    bad = {"Authorization": "Bearer wrong"}
    assert (await hook(http, tenant, "wake", wake, headers=bad))[0] == 401
    status, body, _ = await hook(http, tenant, "wake", wake, query=f"?token={tenant.hooks_token}")
    assert status == 400
    assert "query parameters are not allowed" in body["error"]
    via_header = {"X-OpenClaw-Token": tenant.hooks_token}
    status, body, _ = await hook(http, tenant, "wake", wake, headers=via_header)
    assert (status, body) == (200, {"ok": True, "mode": "now", "eventOutcome": "queued"})
    assert (await hook(http, tenant, "nope", {}))[0] == 404
    status, body, _ = await hook(http, tenant, "agent", {})
    assert (status, body) == (400, {"ok": False, "error": "message required"})


async def test_repeated_bad_tokens_are_rate_limited(
    tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    bad = {"Authorization": "Bearer wrong"}
    statuses = [
        (await hook(http, tenant, "wake", {"text": "x"}, headers=bad))[0] for _ in range(20)
    ]
    assert statuses == [401] * 20
    status, _, headers = await hook(http, tenant, "wake", {"text": "x"}, headers=bad)
    assert status == 429
    assert int(headers["Retry-After"]) > 0


async def test_agent_run_delivers_to_telegram_and_can_wait_for_completion(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    run = {"message": "from hook", "deliver": True, "channel": "telegram", "to": "333"}
    key = {"Authorization": f"Bearer {tenant.hooks_token}", "Idempotency-Key": "k1"}
    status, first, _ = await hook(http, tenant, "agent", run, headers=key)
    assert status == 200
    assert first["ok"] is True
    # A retry with the same key replays the same run instead of starting another.
    _, again, _ = await hook(http, tenant, "agent", run, headers=key)
    assert again["runId"] == first["runId"]
    [message] = await fake_tg.wait_for_messages(tenant.bot_token, 1, timeout=10, chat_id=333)
    assert message.text == "echo: from hook (#1)"

    status, waited, _ = await hook(
        http, tenant, "agent", {"message": "quiet", "waitForCompletion": True}
    )
    assert status == 200
    assert waited["completion"] == {"status": "ok", "text": "echo: quiet (#2)"}
    assert len(fake_tg.sent(tenant.bot_token)) == 1
