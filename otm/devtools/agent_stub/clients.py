"""Outbound calls of the stand-in agent: the Telegram Bot API and an OpenAI-compatible model.

URLs holding the bot token are never logged or put into exception messages.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from otm.devtools.agent_stub.config import ModelConfig


class BotApiError(Exception):
    def __init__(self, method: str, status: int | None, description: str, *, retryable: bool):
        super().__init__(f"{method} failed ({status or 'no answer'}): {description}")
        self.method = method
        self.status = status
        self.retryable = retryable


class BotApi:
    """``{api_root}/bot{token}/{method}`` with JSON bodies, like grammY."""

    def __init__(self, session: aiohttp.ClientSession, api_root: str, token: str) -> None:
        self._session = session
        self._base = f"{api_root}/bot{token}"

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float = 30.0
    ) -> Any:
        try:
            async with self._session.post(
                f"{self._base}/{method}",
                json=params or {},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as e:
            # The exception text of a connection error may include the URL, hence the type only.
            raise BotApiError(method, None, type(e).__name__, retryable=True) from None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        description = str(body.get("description")) if isinstance(body, dict) else f"HTTP {status}"
        # Telegram asks for a retry with 429 and 5xx; other errors will not fix themselves.
        raise BotApiError(method, status, description, retryable=status == 429 or status >= 500)


class ModelError(Exception):
    pass


async def stream_chat_completion(
    session: aiohttp.ClientSession,
    model: ModelConfig,
    messages: list[dict[str, str]],
    *,
    timeout_s: float = 600.0,
) -> str:
    """One streamed ``openai-completions`` call; returns the assembled assistant text."""
    headers = {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}
    payload = {
        "model": model.model_id,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    pieces: list[str] = []
    try:
        async with session.post(
            f"{model.base_url}/chat/completions",
            json=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            if response.status != 200:
                raise ModelError(f"model answered HTTP {response.status}")
            async for raw_line in response.content:
                line = raw_line.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                pieces.append(_delta_text(data))
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ModelError(f"model call failed: {type(e).__name__}") from None
    return "".join(pieces)


def _delta_text(data: str) -> str:
    try:
        chunk = json.loads(data)
    except ValueError:
        return ""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not choices:
        return ""
    delta = choices[0].get("delta") or {}
    content = delta.get("content")
    return content if isinstance(content, str) else ""
