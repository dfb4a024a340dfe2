"""The stub OpenAI-compatible model: deterministic replies, SSE streaming, recording."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from otm.devtools.stub_llm import StubLLM, reply_for


def test_reply_echoes_the_last_user_message_and_counts_prior_user_turns() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first (prior user turns: 0)"},
        {"role": "user", "content": [{"type": "text", "text": "second\n  line"}]},
    ]
    assert reply_for(messages) == "echo: second line (prior user turns: 1)"
    assert reply_for([]) == "echo:  (prior user turns: 0)"


def test_agent_internal_context_is_neither_echoed_nor_counted_as_a_turn() -> None:
    # OpenClaw appends one such user message per turn; only real user text counts.
    internal = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\ndata\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": 'Conversation info:\n```json\n{"a": 1}\n```\n\nhello'},
        {"role": "user", "content": [{"type": "text", "text": internal}]},
    ]
    assert reply_for(messages) == "echo: Conversation info: hello (prior user turns: 0)"


def test_long_user_text_is_cut() -> None:
    reply = reply_for([{"role": "user", "content": "x" * 1000}])
    assert reply == f"echo: {'x' * 200} (prior user turns: 0)"


async def test_non_streaming_completion_and_model_list(
    stub_llm: StubLLM, http: aiohttp.ClientSession
) -> None:
    messages = [{"role": "user", "content": "ping"}]
    async with http.post(
        f"{stub_llm.base_url}/chat/completions",
        json={"model": "stub-model", "messages": messages},
        headers={"Authorization": "Bearer k"},
    ) as response:
        body = await response.json()
    assert response.status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: ping (prior user turns: 0)",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    async with http.get(f"{stub_llm.base_url}/models") as response:
        models = await response.json()
    assert [m["id"] for m in models["data"]] == ["stub-model"]
    [recorded] = stub_llm.requests
    assert (recorded.model, recorded.stream, recorded.had_authorization) == (
        "stub-model",
        False,
        True,
    )
    assert recorded.messages == messages


async def read_sse(response: aiohttp.ClientResponse) -> list[str]:
    events = []
    async for raw in response.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            events.append(line[len("data: ") :])
    return events


async def test_streaming_completion_is_sse_chunks_then_done(
    stub_llm: StubLLM, http: aiohttp.ClientSession
) -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "two words"},
    ]
    async with http.post(
        f"{stub_llm.base_url}/chat/completions",
        json={
            "model": "stub-model",
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = await read_sse(response)
    assert events[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content_chunks = [c for c in chunks if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in content_chunks)
    assert text == "echo: two words (prior user turns: 1)"
    assert content_chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert content_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] > 0
    assert stub_llm.requests[0].stream is True
    assert stub_llm.requests[0].user_turns == 2


async def test_bad_requests_are_400_and_not_recorded(
    stub_llm: StubLLM, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{stub_llm.base_url}/chat/completions", data=b"{nope") as response:
        assert response.status == 400
    async with http.post(
        f"{stub_llm.base_url}/chat/completions", json={"messages": "not a list"}
    ) as response:
        assert response.status == 400
    assert stub_llm.requests == []


async def test_requests_are_visible_over_http_and_waitable(
    stub_llm: StubLLM, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{stub_llm.base_url}/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
    ) as response:
        await response.read()
    await stub_llm.wait_for_requests(1, timeout=5)
    root = stub_llm.base_url.removesuffix("/v1")
    async with http.get(f"{root}/_stub/requests") as response:
        recorded = (await response.json())["requests"]
    assert [r["messages"] for r in recorded] == [[{"role": "user", "content": "hi"}]]
