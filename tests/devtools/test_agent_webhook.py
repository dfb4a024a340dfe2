"""Agent stub webhook: request checks, durable ack, de-duplication, ordered per-chat turns."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from daemon.agent.openclaw_config import ModelProvider
from otm.devtools.agent_stub.store import read_turn_count
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from otm.devtools.stub_llm import StubLLM
from tests.devtools.conftest import ModelRig, SpawnAgent
from tests.support.agent_stub import (
    SECRET_HEADER,
    StubTenant,
    make_stub_tenant,
    post_update,
    wait_agent_idle,
)

CHAT = 111


async def raw_post(
    http: aiohttp.ClientSession,
    url: str,
    data: bytes,
    headers: list[tuple[str, str]],
    method: str = "POST",
) -> tuple[int, str]:
    async with http.request(method, url, data=data, headers=headers) as response:
        return response.status, await response.text()


async def test_bad_requests_are_refused_and_start_no_turn(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    body = json.dumps(make_text_update(1, CHAT, "refused")).encode()
    good = (SECRET_HEADER, tenant.webhook_secret)
    base = f"http://127.0.0.1:{tenant.webhook_port}"
    cases = [
        ("no secret", tenant.webhook_url, body, [], "POST", 401),
        ("wrong secret", tenant.webhook_url, body, [(SECRET_HEADER, "nope")], "POST", 401),
        ("secret twice", tenant.webhook_url, body, [good, good], "POST", 401),
        ("GET", tenant.webhook_url, b"", [good], "GET", 404),
        ("other path", f"{base}/tg/t1", body, [good], "POST", 404),
        ("query string", f"{tenant.webhook_url}?x=1", body, [good], "POST", 404),
        ("bad JSON", tenant.webhook_url, b"{not json", [good], "POST", 400),
        ("no update_id", tenant.webhook_url, b'{"message": {}}', [good], "POST", 400),
        ("too big", tenant.webhook_url, b" " * (1024 * 1024 + 1), [good], "POST", 413),
    ]
    for name, url, data, headers, method, expected in cases:
        status, text = await raw_post(http, url, data, headers, method)
        assert status == expected, name
        if expected == 401:
            assert text == "unauthorized"

    status, answer_headers = await post_update(http, tenant, make_text_update(2, CHAT, "accepted"))
    assert status == 200
    assert answer_headers["x-openclaw-delivery-accepted"] == "durable"
    [message] = await fake_tg.wait_for_messages(tenant.bot_token, 1, timeout=10)
    assert message.text == "echo: accepted (#1)"


async def test_reply_is_sent_after_typing_in_openclaws_shape(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    await post_update(http, tenant, make_text_update(1, CHAT, "a <b> & c"))
    [message] = await fake_tg.wait_for_messages(tenant.bot_token, 1, timeout=10)
    assert message.params == {
        "chat_id": str(CHAT),
        "text": "echo: a &lt;b&gt; &amp; c (#1)",
        "parse_mode": "HTML",
    }
    methods = [c.method for c in fake_tg.calls(tenant.bot_token)]
    assert methods.index("sendChatAction") < methods.index("sendMessage")
    typing = fake_tg.calls(tenant.bot_token, "sendChatAction")[0]
    assert typing.params == {"chat_id": CHAT, "action": "typing"}


async def test_repeated_update_ids_are_acked_but_processed_once(
    fake_tg: FakeTelegram, tenant: StubTenant, spawn_agent: SpawnAgent, http: aiohttp.ClientSession
) -> None:
    await spawn_agent(tenant)
    first = make_text_update(5, CHAT, "first")
    assert (await post_update(http, tenant, first))[0] == 200
    assert (await post_update(http, tenant, first))[0] == 200
    assert (await post_update(http, tenant, make_text_update(6, CHAT, "second")))[0] == 200
    # Same chat, so turns are in order: a duplicate would have replied before "second".
    messages = await fake_tg.wait_for_messages(tenant.bot_token, 2, timeout=10)
    assert [m.text for m in messages] == ["echo: first (#1)", "echo: second (#2)"]
    assert read_turn_count(tenant.state_dir) == 2


async def test_turns_are_ordered_per_chat_with_history_kept_per_chat(rig: ModelRig) -> None:
    tenant, fake_tg, stub_llm, spawn_agent, http = rig
    stub_llm.delay_s = 0.05  # a turn takes a while, so a later update arrives mid-turn
    await spawn_agent(tenant)
    update_id = 0
    for i in range(4):
        for chat in (CHAT, 222):
            update_id += 1
            status, _ = await post_update(http, tenant, make_text_update(update_id, chat, f"m{i}"))
            assert status == 200
    await fake_tg.wait_for_messages(tenant.bot_token, 8, timeout=15)
    for chat in (CHAT, 222):
        # The model sees this chat's earlier turns only, in order.
        assert [m.text for m in fake_tg.sent(tenant.bot_token, chat)] == [
            f"echo: m{i} (prior user turns: {i})" for i in range(4)
        ]
    assert all(r.had_authorization and r.stream for r in stub_llm.requests)


@pytest.mark.parametrize("policy", ["pairing", "allowlist"])
async def test_unknown_senders_get_no_model_call(
    tmp_path: Path,
    fake_tg: FakeTelegram,
    stub_llm: StubLLM,
    spawn_agent: SpawnAgent,
    http: aiohttp.ClientSession,
    policy: str,
) -> None:
    tenant = make_stub_tenant(
        tmp_path,
        fake_tg.base_url,
        model_provider=ModelProvider(
            name="stub", base_url=stub_llm.base_url, model_id="stub-model", api_key="k"
        ),
        dm_policy=policy,  # type: ignore[arg-type]
        allow_from=["333"],
    )
    await spawn_agent(tenant)
    await post_update(http, tenant, make_text_update(1, CHAT, "let me in"))
    await post_update(http, tenant, make_text_update(2, 333, "known"))
    await fake_tg.wait_for_messages(tenant.bot_token, 1, timeout=10, chat_id=333)
    if policy == "pairing":
        [pairing] = await fake_tg.wait_for_messages(tenant.bot_token, 1, timeout=10, chat_id=CHAT)
        assert "Pairing code:" in pairing.text
        assert "openclaw pairing approve telegram" in pairing.text
    else:
        await wait_agent_idle(http, tenant)
        assert fake_tg.sent(tenant.bot_token, CHAT) == []
    assert [r.messages[-1]["content"] for r in stub_llm.requests] == ["known"]

    # dmPolicy/allowFrom are hot-reloaded from disk, as OpenClaw does.
    tenant.config["channels"]["telegram"]["allowFrom"] = ["333", str(CHAT)]
    tenant.write_config()
    await post_update(http, tenant, make_text_update(3, CHAT, "again"))
    await stub_llm.wait_for_requests(2, timeout=10)
    assert stub_llm.requests[-1].messages[-1]["content"] == "again"
