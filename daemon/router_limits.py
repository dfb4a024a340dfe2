"""Connection limits of the public webhook listener (the one anonymous clients reach).

aiohttp's server has no deadline for a request's headers (its keep-alive timer
is cancelled by the first byte) and no connection cap, so idle or half-sent
sockets pile up until the process runs out of file descriptors, and then the
admin listener (probes) cannot accept either. ``ConnectionGuard`` adds both:

- a cap on open router connections: one beyond it is answered ``503`` and
  closed at once (its descriptor is freed immediately);
- a header deadline: a connection must deliver a request's headers within
  ``header_timeout_s`` of being opened or of its previous response, else it is
  aborted. The body has its own deadline in the handler (408).

The cap is also held under half the process's descriptor limit, so the admin
listener, Redis and the agents always have descriptors left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

REJECT = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def effective_cap(max_connections: int) -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft // 2))


class ConnectionGuard:
    def __init__(self, *, max_connections: int, header_timeout_s: float) -> None:
        self.max_connections = effective_cap(max_connections)
        self.header_timeout_s = header_timeout_s
        self._deadlines: dict[asyncio.BaseTransport, asyncio.TimerHandle | None] = {}
        self.rejected = 0
        self.timed_out = 0

    @property
    def open_connections(self) -> int:
        return len(self._deadlines)

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        def factory() -> asyncio.Protocol:
            return _GuardedProtocol(self, inner)

        return factory

    # -- called by _GuardedProtocol / the middleware --------------------------------------
    def admit(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._deadlines) >= self.max_connections:
            self.rejected += 1
            if self.rejected == 1 or self.rejected % 1000 == 0:
                log.warning(
                    "router connection cap %d reached: refused %d connection(s) so far",
                    self.max_connections,
                    self.rejected,
                )
            return False
        self._deadlines[transport] = None
        self._arm(transport)
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        handle = self._deadlines.pop(transport, None)
        if handle is not None:
            handle.cancel()

    def _arm(self, transport: asyncio.BaseTransport) -> None:
        if transport not in self._deadlines:
            return
        self._disarm(transport)
        loop = asyncio.get_running_loop()
        self._deadlines[transport] = loop.call_later(self.header_timeout_s, self._expire, transport)

    def _disarm(self, transport: asyncio.BaseTransport) -> None:
        handle = self._deadlines.get(transport)
        if handle is not None:
            handle.cancel()
            self._deadlines[transport] = None

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        if transport in self._deadlines:
            self._deadlines[transport] = None
            self.timed_out += 1
            transport.abort()  # type: ignore[attr-defined]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Headers are in: stop the header deadline while the request is handled, and
        restart it for the next request on the same (keep-alive) connection."""
        transport = request.transport
        if transport is not None:
            self._disarm(transport)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            if transport is not None:
                self._arm(transport)


class _GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's protocol once the guard admitted the connection."""

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if not self._guard.admit(transport):
            with contextlib.suppress(Exception):
                transport.write(REJECT)  # type: ignore[attr-defined]
            transport.close()
            return
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.release(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedTCPSite(web.TCPSite):
    """``web.TCPSite`` whose connections go through a ConnectionGuard."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
