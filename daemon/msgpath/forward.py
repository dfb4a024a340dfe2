"""The POST of one update to a tenant's agent, on a connection the tenant's worker keeps.

A delivery worker sends one update at a time, in order, to one agent: exactly what
one HTTP/1.1 keep-alive connection does. ``aiohttp.ClientSession.post`` costs several
times the CPU of writing a pre-built request and reading the answer (connection pool,
request and response objects, tracing hooks) and, under load, more event-loop turns
per update; the daemon's delivery then trails its router. ``AgentConnection`` writes
the request in one piece and reads the answer (Content-Length, chunked, or up to
the close), enough for any HTTP/1.1 server.

Only plain ``http://`` endpoints take this path (agents are reached inside the
cluster or on loopback); anything else goes through the shared aiohttp session.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from daemon.msgpath.lazy_deadline import LazyDeadline

CONNECT_TIMEOUT_S = 3.0
TOTAL_TIMEOUT_S = 15.0
MAX_HEAD_BYTES = 64 * 1024
"""An agent's status line and headers; more is not an answer we understand."""
DISCARD_CHUNK = 64 * 1024


class ForwardError(Exception):
    """The agent could not be reached or did not answer HTTP (unreachable)."""


class _NoAnswer(ForwardError):
    """The connection ended before any byte of an answer."""


def plain_http(endpoint: str) -> bool:
    return endpoint.startswith("http://")


def _header_safe(value: str) -> bool:
    return not any(c in value for c in "\r\n\0")


class AgentConnection:
    """One keep-alive connection to one endpoint; one request at a time."""

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain http endpoint: {endpoint}")
        self.endpoint = endpoint
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self._head_start = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        ).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # The total timeout: one lazily moved timer per connection, not an
        # asyncio.timeout per POST (lazy_deadline.py says why).
        self._in_flight: asyncio.Task[object] | None = None
        self._watchdog = LazyDeadline(self._expire)
        self._expired = False

    async def close(self) -> None:
        """Close the connection (a request in flight is not affected: its caller does
        this). Also stops the watchdog."""
        if self._in_flight is None:
            self._watchdog.stop()
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def post(self, body: bytes, secret_header: str, secret: str) -> int:
        """POST ``body``; the answer's status. ForwardError when there is none
        (connection refused or lost, timeout, not HTTP)."""
        if not _header_safe(secret):
            raise ForwardError("secret is not a valid header value")
        raw = b"".join(
            (
                self._head_start,
                f"{secret_header}: {secret}\r\nContent-Length: {len(body)}\r\n\r\n".encode(
                    "latin-1"
                ),
                body,
            )
        )
        task = asyncio.current_task()
        assert task is not None
        self._arm(task)
        try:
            reused = self._writer is not None
            try:
                return await self._exchange(raw)
            except _NoAnswer:
                if not reused:
                    raise
            # The agent closed the idle connection as we wrote: it saw nothing of
            # this request, so it is sent once more on a fresh connection.
            return await self._exchange(raw)
        except asyncio.CancelledError:
            await self.close()  # cancelled mid-answer: the connection is out of step
            if self._expired and task.uncancel() == 0:
                raise ForwardError(f"no answer within {TOTAL_TIMEOUT_S} s") from None
            raise
        except ForwardError:
            await self.close()
            raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise ForwardError(str(exc) or type(exc).__name__) from exc
        finally:
            self._in_flight = None
            self._watchdog.disarm()

    def _arm(self, task: asyncio.Task[object]) -> None:
        self._in_flight = task
        self._expired = False
        self._watchdog.arm(TOTAL_TIMEOUT_S)

    def _expire(self) -> None:
        assert self._in_flight is not None  # armed only while a request is in flight
        self._expired = True
        self._in_flight.cancel()

    async def _exchange(self, raw: bytes) -> int:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(raw)
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            partial = getattr(exc, "partial", b"")
            await self.close()
            if partial:
                raise ForwardError("answer cut short") from exc
            raise _NoAnswer("connection closed before an answer") from exc
        except asyncio.LimitOverrunError as exc:
            raise ForwardError("answer head too long") from exc
        status, keep_alive = await self._read_rest(head)
        while 100 <= status < 200:  # interim answers (we send no Expect; be lenient)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status, keep_alive = await self._read_rest(head)
        if not keep_alive:
            await self.close()
        return status

    async def _connect(self) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=MAX_HEAD_BYTES
            )

    async def _read_rest(self, head: bytes) -> tuple[int, bool]:
        """Parse the head, read (and drop) the body; (status, connection reusable)."""
        assert self._reader is not None
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ForwardError("not an HTTP/1.x answer")
        status = int(rest[:3])
        length: int | None = None
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            value = value.strip().lower()
            if key == b"content-length":
                length = int(value)
                if length < 0:
                    raise ForwardError("negative Content-Length")
            elif key == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif key == b"connection":
                if b"close" in value:
                    keep_alive = False
                elif b"keep-alive" in value:
                    keep_alive = True
        if 100 <= status < 200 or status in (204, 304):
            return status, keep_alive
        if chunked:
            await self._drop_chunked()
        elif length is not None:
            await self._drop(length)
        else:  # the body runs to the close
            while await self._reader.read(DISCARD_CHUNK):
                pass
            keep_alive = False
        return status, keep_alive

    async def _drop(self, length: int) -> None:
        assert self._reader is not None
        while length > 0:
            chunk = await self._reader.readexactly(min(length, DISCARD_CHUNK))
            length -= len(chunk)

    async def _drop_chunked(self) -> None:
        assert self._reader is not None
        while True:
            size_line = await self._reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers (usually none) end with an empty line.
                while await self._reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return
            await self._drop(size + 2)
