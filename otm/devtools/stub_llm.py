"""A stub OpenAI-compatible model server with deterministic replies.

``POST /v1/chat/completions`` (SSE streaming or a plain JSON answer) and ``GET /v1/models``.
The reply is :func:`reply_for` of the request's messages::

    echo: <the last user message> (prior user turns: <n>)

where ``n`` counts the user messages before the last one. An agent that keeps its history sends a
growing ``n``, so persistence of conversation history is visible in the replies. There are no magic
words: agents resend the whole history, so a trigger in a prompt would fire again on later turns.

Every request is recorded (:attr:`StubLLM.requests`, or ``GET /_stub/requests`` when run as a
process with ``python -m otm.devtools.stub_llm --port N``). ``delay_s`` holds each answer back, to
simulate a slow model (a turn in flight); ``chunk_delay_s`` paces a stream's chunks.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from otm.devtools._serving import AppServer, ChangeNotifier, ServingMain

DEFAULT_MODEL = "stub-model"
ECHO_LIMIT = 200
"""Longest echoed text: agents wrap user text in metadata, and a reply must fit one message."""
_INTERNAL_BLOCK = re.compile(r"<<<BEGIN_([A-Z_]+)>>>.*?<<<END_\1>>>", re.DOTALL)
_FENCED_CODE = re.compile(r"```.*?```", re.DOTALL)


@dataclass(frozen=True)
class ChatRequest:
    model: str
    stream: bool
    messages: list[dict[str, Any]]
    had_authorization: bool
    at: float

    @property
    def user_turns(self) -> int:
        return sum(1 for m in self.messages if m.get("role") == "user")

    @property
    def reported_usage(self) -> dict[str, int]:
        """The usage the stub reported for this request (its answer is deterministic)."""
        return _usage(self.messages, reply_for(self.messages))


@dataclass
class StubLLMState:
    model_ids: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    """Pause between streamed chunks (a slow stream a client can abandon half-way)."""
    requests: list[ChatRequest] = field(default_factory=list)
    model_list_requests: int = 0
    changes: ChangeNotifier = field(default_factory=ChangeNotifier)


STATE_KEY = web.AppKey("stub_llm_state", StubLLMState)


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of typed parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


def _visible_text(text: str) -> str:
    """User text without agent-added blocks: ``<<<BEGIN_X>>>…<<<END_X>>>`` and fenced code."""
    text = _INTERNAL_BLOCK.sub(" ", text)
    text = _FENCED_CODE.sub(" ", text)
    return " ".join(text.split())


def reply_for(messages: list[dict[str, Any]]) -> str:
    """The deterministic reply to a conversation (see the module docstring).

    User messages that are nothing but agent-internal context (OpenClaw appends one per turn)
    are not turns; what remains is echoed, whitespace-collapsed and cut to ``ECHO_LIMIT``.
    """
    user_texts = [
        visible
        for m in messages
        if m.get("role") == "user" and (visible := _visible_text(message_text(m)))
    ]
    last = user_texts[-1] if user_texts else ""
    return f"echo: {last[:ECHO_LIMIT]} (prior user turns: {max(len(user_texts) - 1, 0)})"


def _chunk(completion_id: str, model: str, created: int, **choice: Any) -> bytes:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, **choice}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


def _usage(messages: list[dict[str, Any]], reply: str) -> dict[str, int]:
    # Word counts stand in for tokens: deterministic and good enough for clients that sum usage.
    prompt = sum(len(message_text(m).split()) for m in messages)
    completion = len(reply.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def handle_chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": {"message": "invalid JSON"}}, status=400)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return web.json_response({"error": {"message": "messages must be a list"}}, status=400)
    model = str(body.get("model") or state.model_ids[0])
    stream = bool(body.get("stream"))
    state.requests.append(
        ChatRequest(
            model=model,
            stream=stream,
            messages=messages,
            had_authorization="Authorization" in request.headers,
            at=time.time(),
        )
    )
    state.changes.notify()
    if state.delay_s > 0:
        await asyncio.sleep(state.delay_s)
    reply = reply_for(messages)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    created = int(time.time())
    if not stream:
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(messages, reply),
            }
        )
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(_chunk(completion_id, model, created, delta={"role": "assistant"}))
    # Word-sized pieces so clients that assemble deltas are exercised.
    words = reply.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        await response.write(_chunk(completion_id, model, created, delta={"content": piece}))
        if state.chunk_delay_s > 0:
            await asyncio.sleep(state.chunk_delay_s)
    await response.write(_chunk(completion_id, model, created, delta={}, finish_reason="stop"))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        usage = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(messages, reply),
        }
        await response.write(f"data: {json.dumps(usage)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def handle_models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.model_list_requests += 1
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "otm-stub"}
                for m in state.model_ids
            ],
        }
    )


async def handle_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"requests": [asdict(r) for r in state.requests]})


async def handle_config(request: web.Request) -> web.Response:
    """``POST /_stub/config {"delay_s": 1.5}``: live knobs for a stub running as a process."""
    state = request.app[STATE_KEY]
    body = await request.json()
    if "delay_s" in body:
        state.delay_s = max(0.0, float(body["delay_s"]))
    return web.json_response({"delay_s": state.delay_s})


def create_app(state: StubLLMState | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state if state is not None else StubLLMState()
    app.router.add_post("/v1/chat/completions", handle_chat_completions)
    app.router.add_get("/v1/models", handle_models)
    app.router.add_get("/_stub/requests", handle_requests)
    app.router.add_post("/_stub/config", handle_config)
    return app


class StubLLM(AppServer):
    """In-process runner. ``base_url`` ends in ``/v1``, as a provider's ``baseUrl`` wants."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.0) -> None:
        super().__init__(host=host, port=port)
        self.state = StubLLMState(delay_s=delay_s)

    def build_app(self) -> web.Application:
        return create_app(self.state)

    @property
    def base_url(self) -> str:
        return f"{super().base_url}/v1"

    @property
    def requests(self) -> list[ChatRequest]:
        return self.state.requests

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 10.0,
    ) -> list[ChatRequest]:
        """Wait until ``count`` chat requests arrived (they are recorded before any delay)."""
        if not await self.state.changes.wait_until(lambda: len(self.requests) >= count, timeout):
            raise TimeoutError(f"expected {count} model request(s), got {len(self.requests)}")
        return self.requests

    def reported_usage(self) -> dict[str, int]:
        """What it reported for every request it answered, summed: the figures a usage
        ledger in front of it must arrive at."""
        total = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        for request in self.requests:
            reported = request.reported_usage
            total["requests"] += 1
            total["prompt_tokens"] += reported["prompt_tokens"]
            total["completion_tokens"] += reported["completion_tokens"]
        return total

    @property
    def delay_s(self) -> float:
        return self.state.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self.state.delay_s = value


main = ServingMain(
    "Stub OpenAI-compatible model server on loopback; prints its base URL (ends in /v1).",
    StubLLM,
)


if __name__ == "__main__":
    raise SystemExit(main())
