"""End to end: agents reach a model only through the daemon's model gateway, with their own key.

Real daemon process, real stand-in agents, the stub LLM (OpenAI-compatible) or the Bedrock
stand-in (boto3 with an endpoint override) as the upstream. The tenant's key is read where the
agent gets it: its openclaw.json.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.bedrock_stub import DEFAULT_MODEL as BEDROCK_MODEL
from otm.devtools.bedrock_stub import BedrockStub
from otm.devtools.fake_telegram import FakeTelegram
from otm.devtools.stub_llm import StubLLM, reply_for
from tests.e2e.harness import Daemon
from tests.support.daemon_fixtures import DaemonFactory


def model_env(llm: StubLLM) -> dict[str, str]:
    """The daemon's model settings: agents' turns go through its gateway to the stub."""
    return {"OTM_AGENT_MODEL_BASE_URL": llm.base_url, "OTM_AGENT_MODEL_ID": "stub-model"}


REPLY_TIMEOUT = 30.0
UPSTREAM_KEY = "sk-upstream-only-the-daemon-holds"


@pytest.fixture
async def llm() -> AsyncIterator[StubLLM]:
    async with StubLLM(host="127.0.0.1", port=0) as stub:
        yield stub


def agent_config(data_dir: Path, tenant_id: str) -> dict[str, Any]:
    [path] = (data_dir / "agents" / tenant_id).glob("*/openclaw.json")
    return dict(json.loads(path.read_text()))


def agent_key(data_dir: Path, tenant_id: str) -> str:
    return str(agent_config(data_dir, tenant_id)["models"]["providers"]["otm"]["apiKey"])


async def chat(
    daemon: Daemon, key: str | None, *, stream: bool = False, text: str = "hello", **extra: Any
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = {
        "model": "stub-model",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{daemon.model_gateway_url}/chat/completions", json=body, headers=headers
        ) as resp,
    ):
        raw = await resp.read()
        if stream and resp.status == 200:
            events = [
                line[5:].strip().decode() for line in raw.split(b"\n") if line.startswith(b"data:")
            ]
            return resp.status, dict(resp.headers), events
        return resp.status, dict(resp.headers), json.loads(raw)


async def usage(daemon: Daemon, tenant_id: str, requests: int | None = None) -> dict[str, Any]:
    """The tenant's usage; with ``requests``, once that many requests are counted (a stream's
    usage is written just after the agent's stream ends)."""
    async with asyncio.timeout(10):
        while True:
            status, body = await daemon.api("GET", f"/v1/usage?since=1h&tenant={tenant_id}")
            assert status == 200, body
            [item] = body["items"]
            if requests is None or item["requests"] >= requests:
                return dict(item)
            await asyncio.sleep(0.05)


async def wake_through_a_message(
    daemon: Daemon, telegram: FakeTelegram, tenant_id: str, bot_token: str, text: str
) -> str:
    secret = await daemon.create_tenant(tenant_id, bot_token)
    await daemon.send_text(tenant_id, secret, 1, 7, text)
    sent = await telegram.wait_for_messages(bot_token, 2, REPLY_TIMEOUT, chat_id=7)
    replies = [m.text for m in sent if m.text != STARTING_NOTICE]
    assert replies, [m.text for m in sent]
    return replies[0]


async def test_agent_replies_through_the_gateway_and_usage_is_exact(
    start_daemon: DaemonFactory, telegram: FakeTelegram, llm: StubLLM, data_dir: Path
) -> None:
    daemon = await start_daemon(
        **model_env(llm),
        OTM_AGENT_MODEL_API_KEY=UPSTREAM_KEY,
        OTM_MODEL_PRICES="stub-model=1000000:2000000",
    )
    reply = await wake_through_a_message(daemon, telegram, "gwa", "3001:gwa", "through the gateway")
    assert reply == "echo: through the gateway (prior user turns: 0)"

    config = agent_config(data_dir, "gwa")
    provider = config["models"]["providers"]["otm"]
    assert provider["baseUrl"] == daemon.model_gateway_url
    assert provider["apiKey"].startswith("otm-mk-gwa.")
    # The provider credential stays with the daemon: not in the agent's config or its env.
    assert UPSTREAM_KEY not in json.dumps(config)
    assert llm.requests[-1].had_authorization

    key = provider["apiKey"]
    status, _, body = await chat(daemon, key, text="direct")
    assert status == 200 and body["choices"][0]["message"]["content"].startswith("echo: direct")
    # A stream without include_usage gets no usage chunk; with it, the upstream's own count.
    status, _, events = await chat(daemon, key, stream=True, text="streamed")
    assert status == 200 and events[-1] == "[DONE]"
    assert not [e for e in events[:-1] if "usage" in json.loads(e)]
    status, _, events = await chat(
        daemon, key, stream=True, text="counted", stream_options={"include_usage": True}
    )
    [usage_event] = [json.loads(e) for e in events[:-1] if "usage" in json.loads(e)]
    request = llm.requests[-1]
    assert usage_event["usage"] == request.reported_usage
    assert request.stream

    expected = llm.reported_usage()
    counted = await usage(daemon, "gwa", expected["requests"])
    assert {k: counted[k] for k in expected} == expected
    assert counted["models"]["stub-model"]["requests"] == expected["requests"]
    cost = expected["prompt_tokens"] * 1.0 + expected["completion_tokens"] * 2.0
    assert counted["cost_usd"] == pytest.approx(cost)

    status, text = await daemon.api("GET", "/metrics")
    assert status == 200
    assert (
        f'otm_model_tokens_total{{kind="prompt",model="stub-model",tenant="gwa"}} '
        f"{float(expected['prompt_tokens'])}" in text
    )


async def test_wrong_revoked_or_missing_keys_get_401(
    start_daemon: DaemonFactory, telegram: FakeTelegram, llm: StubLLM, data_dir: Path
) -> None:
    daemon = await start_daemon(**model_env(llm))
    await wake_through_a_message(daemon, telegram, "kya", "3002:kya", "a")
    await wake_through_a_message(daemon, telegram, "kyb", "3003:kyb", "b")
    key_a, key_b = agent_key(data_dir, "kya"), agent_key(data_dir, "kyb")
    answered = len(llm.requests)

    assert (await chat(daemon, key_a))[0] == 200
    # Another tenant's key material under this tenant's name, garbage, no key: 401.
    _, b_id, b_mac = key_b.split(".")
    forged = f"otm-mk-kya.{b_id}.{b_mac}"
    for key in (forged, key_a + "x", "sk-anything", None, ""):
        status, _, body = await chat(daemon, key)
        assert status == 401, key
        assert body["error"]["code"] == "invalid_api_key"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{daemon.model_gateway_url}/models") as resp,
        http.get(
            f"{daemon.model_gateway_url}/models", headers={"Authorization": f"Bearer {key_a}"}
        ) as listed,
    ):
        assert resp.status == 401
        assert listed.status == 200
        assert [m["id"] for m in (await listed.json())["data"]] == ["stub-model"]

    # Rotation: the old key is refused at once, the new one (next wake's config) works.
    status, body = await daemon.api("POST", "/v1/tenants/kya/rotate-key")
    assert status == 200 and body["has_model_key"]
    assert (await chat(daemon, key_a))[0] == 401
    assert (await chat(daemon, key_b))[0] == 200

    # Suspend revokes (and the key stays dead after a resume); delete revokes.
    assert (await daemon.api("POST", "/v1/tenants/kyb/suspend"))[0] == 200
    assert (await chat(daemon, key_b))[0] == 401
    assert (await daemon.api("POST", "/v1/tenants/kyb/resume"))[0] == 200
    assert (await chat(daemon, key_b))[0] == 401
    assert (await daemon.api("DELETE", "/v1/tenants/kya"))[0] == 204
    assert (await chat(daemon, key_a))[0] == 401
    # Refused requests never reached the upstream: only the two 200s above did.
    assert len(llm.requests) == answered + 2


async def test_limits_answer_429_in_the_openai_shape(
    start_daemon: DaemonFactory, telegram: FakeTelegram, llm: StubLLM, data_dir: Path
) -> None:
    daemon = await start_daemon(
        **model_env(llm),
        OTM_MODEL_REQUESTS_PER_MIN="1000",
        OTM_MODEL_TOKENS_PER_DAY="60",
    )
    await wake_through_a_message(daemon, telegram, "lim", "3004:lim", "spend")
    key = agent_key(data_dir, "lim")
    spent = (await usage(daemon, "lim", len(llm.requests)))["total_tokens"]
    while spent < 60:
        status, _, body = await chat(daemon, key, text="word " * 20)
        assert status == 200, body
        spent += body["usage"]["total_tokens"]
    forwarded = len(llm.requests)
    status, headers, body = await chat(daemon, key)
    assert status == 429
    assert 0 < int(headers["Retry-After"]) <= 86400
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["type"] == "rate_limit_error"
    assert (await chat(daemon, key))[0] == 429
    # Refused requests never reached the upstream.
    assert len(llm.requests) == forwarded


async def test_bedrock_upstream_through_boto3(
    start_daemon: DaemonFactory, telegram: FakeTelegram, data_dir: Path
) -> None:
    async with BedrockStub(host="127.0.0.1", port=0) as bedrock:
        daemon = await start_daemon(
            OTM_MODEL_UPSTREAM="bedrock",
            OTM_BEDROCK_ENDPOINT_URL=bedrock.base_url,
            OTM_BEDROCK_MODEL_ID=BEDROCK_MODEL,
            OTM_AGENT_MODEL_ID="claude",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        reply = await wake_through_a_message(daemon, telegram, "bed", "3005:bed", "via bedrock")
        assert reply == "echo: via bedrock (prior user turns: 0)"
        assert bedrock.requests[-1]["stream"]
        key = agent_key(data_dir, "bed")
        config = agent_config(data_dir, "bed")
        assert "testing" not in json.dumps(config)
        status, _, body = await chat(daemon, key, text="plain")
        assert status == 200 and body["choices"][0]["message"]["content"] == (
            "echo: plain (prior user turns: 0)"
        )
        status, _, events = await chat(
            daemon, key, stream=True, text="streamed", stream_options={"include_usage": True}
        )
        assert status == 200
        text = "".join(
            c["delta"].get("content", "") for e in events[:-1] for c in json.loads(e)["choices"]
        )
        assert text == "echo: streamed (prior user turns: 0)"

        expected = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        for request in bedrock.requests:
            words = sum(
                len(b["text"].split()) for m in request["body"]["messages"] for b in m["content"]
            )
            words += sum(len(s["text"].split()) for s in request["body"].get("system") or [])
            chat_msgs = [
                {"role": m["role"], "content": " ".join(b["text"] for b in m["content"])}
                for m in request["body"]["messages"]
            ]
            expected["requests"] += 1
            expected["prompt_tokens"] += words
            expected["completion_tokens"] += len(reply_for(chat_msgs).split())
        counted = await usage(daemon, "bed", expected["requests"])
        assert {k: counted[k] for k in expected} == expected
        assert list(counted["models"]) == [BEDROCK_MODEL]


async def test_an_abandoned_stream_is_still_counted(
    start_daemon: DaemonFactory, telegram: FakeTelegram, llm: StubLLM, data_dir: Path
) -> None:
    daemon = await start_daemon(**model_env(llm))
    await wake_through_a_message(daemon, telegram, "gone", "3006:gone", "first")
    key = agent_key(data_dir, "gone")
    before = await usage(daemon, "gone", len(llm.requests))
    llm.state.chunk_delay_s = 0.02  # ~100 chunks: the client hangs up long before the end
    body = {
        "model": "stub-model",
        "stream": True,
        "messages": [{"role": "user", "content": "a long answer " * 50}],
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{daemon.model_gateway_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as resp,
    ):
        assert resp.status == 200
        await resp.content.readline()  # the first event, then hang up
        resp.close()
    request = llm.requests[-1]
    reported = request.reported_usage
    after = await usage(daemon, "gone", before["requests"] + 1)
    assert after["prompt_tokens"] - before["prompt_tokens"] == reported["prompt_tokens"]
    assert (
        after["completion_tokens"] - before["completion_tokens"] == (reported["completion_tokens"])
    )
