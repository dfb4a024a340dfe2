"""What the gateway needs from an upstream: one completion, or a stream of SSE chunks whose
usage is known once the stream ends. Usage is the upstream's own report, never an estimate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Answer:
    """A non-streamed answer: the HTTP status and OpenAI-shaped body to relay."""

    status: int
    body: dict[str, Any]
    usage: Usage | None


class StreamResult:
    """Filled in by the upstream while its chunks are consumed."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.status = 200
        self.error_body: dict[str, Any] | None = None
        """Set (with ``status``) instead of chunks when the upstream refused the request."""


class Upstream(Protocol):
    model_id: str
    """The model as counted in usage (the upstream's id)."""

    async def complete(self, body: dict[str, Any]) -> Answer: ...

    def stream(self, body: dict[str, Any], result: StreamResult) -> AsyncIterator[bytes]:
        """SSE ``data:`` events (bytes, each ending in a blank line), ``[DONE]`` last; the
        usage chunk is included (the caller drops it if its client did not ask for it)."""
        ...

    async def close(self) -> None: ...


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error shape."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
