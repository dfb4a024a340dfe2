"""Forward to any OpenAI-compatible server (the stub LLM, vLLM, OpenAI, ...).

Streams ask the upstream for ``stream_options.include_usage`` so every stream ends with the
upstream's token count; the chunks are relayed as they arrive (one line buffer, no reassembly).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from daemon.model_gateway.upstream import Answer, StreamResult, Usage, error_body

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 300.0


def _usage_of(payload: Any) -> Usage | None:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


class OpenAIUpstream:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, model_id: str, api_key: str | None
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
        )

    def _request(self, body: dict[str, Any]) -> Any:
        return self.session.post(
            f"{self.base_url}/chat/completions",
            json={**body, "model": self.model_id},
            headers=self._headers,
            timeout=self._timeout,
        )

    async def complete(self, body: dict[str, Any]) -> Answer:
        try:
            async with self._request({**body, "stream": False}) as resp:
                payload = await _json_or_error(resp)
                usage = _usage_of(payload) if resp.status == 200 else None
                return Answer(resp.status, payload, usage)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Answer(
                502,
                error_body(f"upstream unreachable: {type(exc).__name__}", "upstream_error"),
                None,
            )

    async def stream(self, body: dict[str, Any], result: StreamResult) -> AsyncIterator[bytes]:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        request = {**body, "stream": True, "stream_options": options}
        try:
            async with self._request(request) as resp:
                if resp.status != 200:
                    result.status = resp.status
                    result.error_body = await _json_or_error(resp)
                    return
                pending = b""
                async for chunk in resp.content.iter_any():
                    pending += chunk
                    *events, pending = pending.split(b"\n\n")
                    for event in events:
                        _note_usage(event, result)
                        yield event + b"\n\n"
                if pending.strip():
                    _note_usage(pending, result)
                    yield pending + b"\n\n"
        except (aiohttp.ClientError, TimeoutError) as exc:
            if result.usage is None and result.error_body is None:
                result.status = 502
                result.error_body = error_body(
                    f"upstream unreachable: {type(exc).__name__}", "upstream_error"
                )

    async def close(self) -> None:
        return None


def _note_usage(event: bytes, result: StreamResult) -> None:
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]" or b'"usage"' not in data:
            continue
        try:
            usage = _usage_of(json.loads(data))
        except ValueError:
            continue
        if usage is not None:
            result.usage = usage


async def _json_or_error(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        payload = await resp.json(content_type=None)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        return payload
    return error_body(f"upstream answered HTTP {resp.status}", "upstream_error")
