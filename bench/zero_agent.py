"""A zero-work agent for benchmarks (``python -m bench.zero_agent``).

It speaks just enough of the agent protocol for the local runtime to start it
and the router to deliver to it: it reads the tenant's ``openclaw.json``
(``OPENCLAW_CONFIG_PATH``) for its ports, answers the gateway's ``/readyz``
and the webhook listener's ``/healthz``, and acks every webhook POST with 200
without looking at it. It does no I/O per update, so what a benchmark measures
against it is the router's cost, not an agent's.

For end-to-end latency it remembers when each update arrived: the
``update_id`` (found by a byte search, not a JSON parse) and
``time.monotonic_ns()`` (CLOCK_MONOTONIC is one clock for every process on the
machine). ``GET /otm/bench/receipts`` (gateway port) returns them as JSON
``[[update_id, ns], ...]`` and forgets them.

``OTM_AGENT_BOOT_DELAY_S`` delays both listeners, like the stand-in agent's knob.
The HTTP handling is a minimal HTTP/1.1 keep-alive server on asyncio streams:
requests must carry Content-Length (every client here does).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

UPDATE_ID = re.compile(rb'"update_id"\s*:\s*(-?\d+)')
MAX_BODY = 4 << 20


class Receipts:
    def __init__(self) -> None:
        self.items: list[tuple[int, int]] = []

    def add(self, body: bytes) -> None:
        match = UPDATE_ID.search(body)
        if match is not None:
            self.items.append((int(match.group(1)), time.monotonic_ns()))

    def drain(self) -> list[tuple[int, int]]:
        items, self.items = self.items, []
        return items


def response(status: int, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Status")
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (status, reason, content_type, len(body))
    ) + body


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes, bytes] | None:
    """(method, path, body) of the next request, None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) < 2:
        return None
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length > MAX_BODY:
        return None
    body = await reader.readexactly(length) if length else b""
    return parts[0], parts[1], body


class Agent:
    def __init__(self, config: dict[str, Any], receipts: Receipts | None = None) -> None:
        telegram = config["channels"]["telegram"]
        self.webhook_port = int(telegram["webhookPort"])
        self.webhook_path = str(telegram.get("webhookPath") or "/telegram-webhook").encode()
        self.gateway_port = int(config["gateway"]["port"])
        self.receipts = receipts if receipts is not None else Receipts()

    def webhook_answer(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if method == b"POST" and path == self.webhook_path:
            self.receipts.add(body)
            return response(200, b"ok")
        if path == b"/healthz":
            return response(200, b"ok")
        return response(404, b"not found")

    def gateway_answer(self, method: bytes, path: bytes, body: bytes) -> bytes:
        json_bodies: dict[bytes, Callable[[], bytes]] = {
            b"/readyz": lambda: b'{"ready": true}',
            b"/healthz": lambda: b'{"ok": true}',
            b"/otm/activity": lambda: b'{"busy": false, "pending_turns": 0, "last_turn_at": null}',
            b"/otm/bench/receipts": lambda: json.dumps(self.receipts.drain()).encode(),
        }
        if path in json_bodies:
            return response(200, json_bodies[path](), b"application/json")
        return response(404, b"not found")

    async def webhook(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self.webhook_answer)

    async def gateway(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self.gateway_answer)


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answer: Callable[[bytes, bytes, bytes], bytes],
) -> None:
    """Keep-alive HTTP/1.1: answer each request in turn until the client goes away."""
    try:
        while (request := await read_request(reader)) is not None:
            writer.write(answer(*request))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(config: dict[str, Any], boot_delay_s: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if boot_delay_s > 0:
        try:
            async with asyncio.timeout(boot_delay_s):
                await stop.wait()
            return 0
        except TimeoutError:
            pass
    agent = Agent(config)
    webhook = await asyncio.start_server(agent.webhook, "127.0.0.1", agent.webhook_port)
    gateway = await asyncio.start_server(agent.gateway, "127.0.0.1", agent.gateway_port)
    print(f"zero agent listening on {agent.webhook_port} and {agent.gateway_port}", flush=True)
    try:
        await stop.wait()
    finally:
        webhook.close()
        gateway.close()
    return 0


def main() -> int:
    config = os.environ.get("OPENCLAW_CONFIG_PATH")
    if not config:
        print("zero agent: OPENCLAW_CONFIG_PATH is not set", file=sys.stderr)
        return 1
    delay = float(os.environ.get("OTM_AGENT_BOOT_DELAY_S") or 0)
    return asyncio.run(serve(json.loads(Path(config).read_text()), delay))


if __name__ == "__main__":
    sys.exit(main())
