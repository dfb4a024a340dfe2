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

from tests.support.daemon_fixtures import DaemonFactory

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


async def test_a_trickled_body_gets_408_and_frees_the_connection(
    start_daemon: DaemonFactory,
) -> None:
    daemon = await start_daemon(OTM_ROUTER_BODY_TIMEOUT_S="1")
    secret = await daemon.create_tenant("slow", "4004:slow")
    router = urlsplit(daemon.router_url)
    assert router.hostname is not None and router.port is not None
    reader, writer = await asyncio.open_connection(router.hostname, router.port)
    try:
        writer.write(
            b"POST /tg/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\n".encode()
            + b'Content-Length: 100\r\n\r\n{"update_id": 1'
        )
        await writer.drain()
        async with asyncio.timeout(20):  # a bound, not a speed claim
            status_line = await reader.readline()
        assert status_line.split()[1] == b"408", status_line
    finally:
        writer.close()
    status, buffer = await daemon.api("GET", "/v1/tenants/slow/buffer")
    assert (status, buffer["pending"]) == (200, 0)
