"""Forward to Amazon Bedrock's Converse / ConverseStream through boto3 (the daemon's IAM role).

OpenAI chat messages become Converse messages: ``system`` turns go to ``system``, consecutive
turns of one role are merged (Converse requires alternating roles starting with ``user``),
content is text only (tool calls and images are not translated: the gateway answers 400 for
them rather than silently dropping them). Usage is Bedrock's ``usage`` (Converse) or the
stream's ``metadata`` event (ConverseStream).

boto3 is synchronous: each call runs in a worker thread; a stream's events are handed to the
event loop through a queue as botocore parses them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from daemon.model_gateway.upstream import Answer, StreamResult, Usage, error_body, sse

_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class UnsupportedRequest(ValueError):
    """The request uses something this translation does not carry to Converse."""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                raise UnsupportedRequest("only text content is supported with the Bedrock upstream")
            parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    if content is None:
        return ""
    raise UnsupportedRequest("message content must be a string or a list of text parts")


def to_converse(body: dict[str, Any]) -> dict[str, Any]:
    """Converse keyword arguments (without ``modelId``) for an OpenAI chat request."""
    if body.get("tools") or body.get("functions"):
        raise UnsupportedRequest("tools are not supported with the Bedrock upstream")
    system: list[dict[str, str]] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            text = _text(message.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role not in ("user", "assistant"):
            raise UnsupportedRequest(f"role {role!r} is not supported with the Bedrock upstream")
        text = _text(message.get("content")) or "(empty)"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append({"text": text})
        else:
            messages.append({"role": role, "content": [{"text": text}]})
    if not messages or messages[0]["role"] != "user":
        messages.insert(0, {"role": "user", "content": [{"text": "(start)"}]})
    kwargs: dict[str, Any] = {"messages": messages}
    if system:
        kwargs["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        inference["maxTokens"] = max_tokens
    for src, dst in (("temperature", "temperature"), ("top_p", "topP")):
        if isinstance(body.get(src), int | float):
            inference[dst] = body[src]
    stop = body.get("stop")
    if isinstance(stop, str):
        inference["stopSequences"] = [stop]
    elif isinstance(stop, list):
        inference["stopSequences"] = [str(s) for s in stop]
    if inference:
        kwargs["inferenceConfig"] = inference
    return kwargs


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(int(raw.get("inputTokens") or 0), int(raw.get("outputTokens") or 0))


def _client_error(exc: Exception) -> tuple[int, dict[str, Any]]:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502)
        message = str(response.get("Error", {}).get("Message") or exc)
        code = str(response.get("Error", {}).get("Code") or "")
        status = status if 400 <= status < 600 else 502
        kind = "invalid_request_error" if status == 400 else "upstream_error"
        return status, error_body(f"bedrock: {message}", kind, code or None)
    return 502, error_body(f"bedrock unreachable: {type(exc).__name__}", "upstream_error")


class BedrockUpstream:
    def __init__(self, client: Any, model_id: str, served_model: str) -> None:
        self.client = client
        self.model_id = model_id
        self.served_model = served_model
        """The model id agents asked for (echoed in responses)."""

    @classmethod
    def from_settings(
        cls, region: str, endpoint_url: str | None, model_id: str, served_model: str
    ) -> BedrockUpstream:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=300),
        )
        return cls(client, model_id, served_model)

    def _chunk(self, completion_id: str, created: int, **choice: Any) -> bytes:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.served_model,
                "choices": [{"index": 0, **choice}],
            }
        )

    async def complete(self, body: dict[str, Any]) -> Answer:
        try:
            kwargs = to_converse(body)
        except UnsupportedRequest as exc:
            return Answer(400, error_body(str(exc), "invalid_request_error"), None)
        try:
            response = await asyncio.to_thread(
                self.client.converse, modelId=self.model_id, **kwargs
            )
        except Exception as exc:
            status, err = _client_error(exc)
            return Answer(status, err, None)
        blocks = response.get("output", {}).get("message", {}).get("content") or []
        text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
        usage = _usage(response.get("usage"))
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": _STOP_REASONS.get(str(response.get("stopReason")), "stop"),
                }
            ],
        }
        if usage is not None:
            payload["usage"] = _openai_usage(usage)
        return Answer(200, payload, usage)

    async def stream(self, body: dict[str, Any], result: StreamResult) -> AsyncIterator[bytes]:
        try:
            kwargs = to_converse(body)
        except UnsupportedRequest as exc:
            result.status, result.error_body = 400, error_body(str(exc), "invalid_request_error")
            return
        try:
            response = await asyncio.to_thread(
                self.client.converse_stream, modelId=self.model_id, **kwargs
            )
        except Exception as exc:
            result.status, result.error_body = _client_error(exc)
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for event in response["stream"]:
                    loop.call_soon_threadsafe(events.put_nowait, event)
            except BaseException as exc:  # handed to the loop, raised there
                loop.call_soon_threadsafe(events.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(events.put_nowait, None)

        pumping = asyncio.create_task(asyncio.to_thread(pump), name="bedrock-stream-pump")
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        try:
            while (event := await events.get()) is not None:
                if isinstance(event, BaseException):
                    break  # the stream broke: what was relayed stands, usage unknown
                if "messageStart" in event:
                    yield self._chunk(completion_id, created, delta={"role": "assistant"})
                elif "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        yield self._chunk(completion_id, created, delta={"content": text})
                elif "messageStop" in event:
                    reason = _STOP_REASONS.get(event["messageStop"].get("stopReason"), "stop")
                    yield self._chunk(completion_id, created, delta={}, finish_reason=reason)
                elif "metadata" in event:
                    usage = _usage(event["metadata"].get("usage"))
                    if usage is not None:
                        result.usage = usage
                        yield sse(
                            {
                                "id": completion_id,
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": self.served_model,
                                "choices": [],
                                "usage": _openai_usage(usage),
                            }
                        )
            yield sse("[DONE]")
        finally:
            response["stream"].close()
            await asyncio.shield(pumping)

    async def close(self) -> None:
        self.client.close()


def _openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
