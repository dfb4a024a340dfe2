"""Finding 4: idle and half-sent sockets on the webhook listener neither exhaust the
daemon's descriptors (the admin probes keep answering) nor stay open forever."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import selectors
import socket
import time
from urllib.parse import urlsplit

import aiohttp

from tests.e2e.conftest import DaemonFactory

FD_LIMIT = 300
HOSTILE_SOCKETS = 450  # more than the daemon has descriptors


async def _status(url: str) -> int | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp,
        ):
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


def _open_hostile(host: str, port: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    failures = 0
    for n in range(HOSTILE_SOCKETS):
        if failures > 20:  # the listen backlog is full: the server stopped accepting
            break
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect((host, port))
            if n % 2:  # half-sent: headers never finished
                sock.sendall(b"POST /tg/alpha HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")
        except OSError:
            sock.close()
            failures += 1
            continue
        socks.append(sock)
    return socks


def _held_open(socks: list[socket.socket], within_s: float) -> int:
    """How many sockets the server has not closed (EOF) within ``within_s``."""
    pending = {sock.fileno(): sock for sock in socks}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + within_s
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = pending.get(key.fd)
                if sock is None:
                    continue
                try:
                    data = sock.recv(4096)  # a 503 first, then EOF
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    del pending[key.fd]
    return len(pending)


async def test_idle_and_half_sent_sockets_do_not_take_down_probes(
    start_daemon: DaemonFactory,
) -> None:
    daemon = await start_daemon(OTM_ROUTER_MAX_CONNECTIONS="100", OTM_ROUTER_HEADER_TIMEOUT_S="2")
    assert daemon.proc is not None
    # What a small ulimit does to a daemon (the finding used 400).
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    router = urlsplit(daemon.router_url)
    assert router.hostname is not None and router.port is not None
    socks = await asyncio.to_thread(_open_hostile, router.hostname, router.port)
    try:
        # The admin listener still accepts: probes answer while the sockets are open.
        assert await _status(f"{daemon.admin_url}/livez") == 200
        assert await _status(f"{daemon.admin_url}/readyz") == 200
        # Every hostile socket is let go by the server: refused beyond the cap at
        # once, the admitted ones at their header deadline (a bounded wait, not a
        # speed claim).
        assert await asyncio.to_thread(_held_open, socks, 20.0) == 0
        assert len(socks) > FD_LIMIT  # more sockets than the daemon has descriptors
        # And the router serves again.
        assert await _status(f"{daemon.router_url}/healthz") == 200
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
