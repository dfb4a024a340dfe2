"""A minimal HTTP/1.1 keep-alive client for load generation.

aiohttp's client costs ~0.2 ms of CPU per request; on a 2-core machine the load
generator would then be the bottleneck, not the daemon. This one writes a
pre-formatted request on a persistent connection and reads the status line,
the headers and a Content-Length body: enough for the router and the agents
(every answer here carries Content-Length).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class Connection:
    """One keep-alive connection to ``host:port``; one request at a time."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None

    def request_bytes(
        self, body: bytes, headers: dict[str, str], *, method: str = "POST", path: str = ""
    ) -> bytes:
        head = f"{method} {path or self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Write one pre-formatted request; (status, body). Reconnects once if the
        server closed the idle connection."""
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        self._writer.write(raw)
        try:
            return await self._read_response()
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            await self.open()
            assert self._writer is not None
            self._writer.write(raw)
            return await self._read_response()

    async def _read_response(self) -> tuple[int, bytes]:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body
