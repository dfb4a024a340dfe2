"""A Bedrock stand-in: ``bedrock-runtime``'s Converse and ConverseStream over HTTP.

Reached by boto3 with ``endpoint_url`` and dummy credentials, the way moto is used. It speaks
the real wire format: ``POST /model/{modelId}/converse`` answers JSON, ``.../converse-stream``
answers ``application/vnd.amazon.eventstream`` frames (prelude, headers, payload, CRC32s as in
the AWS event-stream spec) that botocore's own parser decodes. As strict as Bedrock where it
matters here: a SigV4 ``Authorization`` header is required, ``messages`` must start with a
``user`` turn and alternate roles, every content block needs ``text``, an unknown model is 404.

The reply is the stub LLM's :func:`otm.devtools.stub_llm.reply_for`; token counts are word
counts (``inputTokens``: words of system + messages, ``outputTokens``: words of the reply).
"""

from __future__ import annotations

import binascii
import json
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from otm.devtools._serving import AppServer, serve_forever_main
from otm.devtools.stub_llm import reply_for

DEFAULT_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # type 7: string, with a 2-byte length.
    return (
        struct.pack("B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of both),
    headers, payload, CRC32 of everything before it."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


@dataclass
class BedrockStubState:
    model_ids: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    requests: list[dict[str, Any]] = field(default_factory=list)


STATE_KEY = web.AppKey("bedrock_stub_state", BedrockStubState)


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
    )


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "request body must be an object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    expected = "user"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != expected:
            return "A conversation must start with a user message and alternate roles"
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return "each message needs a non-empty content list"
        if not all(
            isinstance(block, dict) and isinstance(block.get("text"), str) for block in content
        ):
            return "only text content blocks are supported by this stand-in"
        expected = "assistant" if expected == "user" else "user"
    return None


def _as_chat(body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """OpenAI-style messages (for reply_for) and the input word count."""
    chat = [
        {"role": m["role"], "content": " ".join(b["text"] for b in m["content"])}
        for m in body["messages"]
    ]
    words = sum(len(str(c["content"]).split()) for c in chat)
    words += sum(len(str(s.get("text", "")).split()) for s in body.get("system") or [])
    return chat, words


async def _parse(request: web.Request) -> tuple[dict[str, Any], str] | web.Response:
    state = request.app[STATE_KEY]
    if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
        return _error(403, "AccessDeniedException", "Missing Authentication Token")
    model_id = unquote(request.match_info["model_id"])
    if model_id not in state.model_ids:
        return _error(404, "ResourceNotFoundException", f"model {model_id} not found")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "ValidationException", "malformed JSON")
    problem = _validate(body)
    if problem is not None:
        return _error(400, "ValidationException", problem)
    state.requests.append(
        {"model_id": model_id, "body": body, "stream": request.path.endswith("-stream")}
    )
    return body, model_id


async def _reply(request: web.Request) -> tuple[str, int] | web.Response:
    """The stub's reply to a valid request and its input token count, or the error."""
    parsed = await _parse(request)
    if isinstance(parsed, web.Response):
        return parsed
    body, _ = parsed
    chat, input_tokens = _as_chat(body)
    return reply_for(chat), input_tokens


async def handle_converse(request: web.Request) -> web.Response:
    answered = await _reply(request)
    if isinstance(answered, web.Response):
        return answered
    reply, input_tokens = answered
    return web.json_response(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
            "stopReason": "end_turn",
            **_usage(reply, input_tokens),
        }
    )


def _usage(reply: str, input_tokens: int) -> dict[str, Any]:
    """The ``usage`` and ``metrics`` of a reply, as both APIs report them."""
    output_tokens = len(reply.split())
    return {
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 1},
    }


async def handle_converse_stream(request: web.Request) -> web.StreamResponse:
    answered = await _reply(request)
    if isinstance(answered, web.Response):
        return answered
    reply, input_tokens = answered
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
    await response.prepare(request)
    await response.write(event_frame("messageStart", {"role": "assistant"}))
    for i, word in enumerate(reply.split(" ")):
        piece = word if i == 0 else " " + word
        await response.write(
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
        )
    await response.write(event_frame("contentBlockStop", {"contentBlockIndex": 0}))
    await response.write(event_frame("messageStop", {"stopReason": "end_turn"}))
    await response.write(event_frame("metadata", _usage(reply, input_tokens)))
    await response.write_eof()
    return response


def create_app(state: BedrockStubState | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state if state is not None else BedrockStubState()
    app.router.add_post("/model/{model_id}/converse", handle_converse)
    app.router.add_post("/model/{model_id}/converse-stream", handle_converse_stream)
    return app


class BedrockStub(AppServer):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.state = BedrockStubState()

    def build_app(self) -> web.Application:
        return create_app(self.state)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.state.requests


def main(argv: list[str] | None = None) -> int:
    return serve_forever_main(
        "Bedrock Converse/ConverseStream stand-in on loopback; prints its endpoint URL.",
        lambda host, port: BedrockStub(host=host, port=port),
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
