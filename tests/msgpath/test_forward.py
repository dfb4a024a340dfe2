"""AgentConnection (the delivery worker's POST) against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from daemon.msgpath import forward
from daemon.msgpath.forward import AgentConnection, ForwardError
from daemon.telegram import SECRET_HEADER
from otm.devtools._serving import ServedApp

Reply = Callable[[int, bytes], bytes | None]
"""(request number on this connection, request bytes) -> raw answer, None: close."""


@dataclass
class RawServer:
    """An HTTP server that answers with exactly the bytes a test gives it."""

    reply: Reply
    close_after_answer: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.reply(served, request)
                served += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer or b"\r\n\r\n" not in answer:
                    break  # (an answer cut short in its head ends the connection)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Reply], Awaitable[RawServer]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply, close_after_answer: bool = False) -> RawServer:
        raw = RawServer(reply, close_after_answer)
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        raw.url = f"http://127.0.0.1:{port}/tg/hook?x=1"
        return raw

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def post_twice(url: str) -> tuple[int, int]:
    """Two posts on one AgentConnection (the second may reuse the first's socket)."""
    connection = AgentConnection(url)
    try:
        first = await connection.post(b"{}", SECRET_HEADER, "s")
        second = await connection.post(b"{}", SECRET_HEADER, "s")
    finally:
        await connection.close()
    return first, second


async def test_requests_share_one_keep_alive_connection() -> None:
    seen: list[tuple[str, str, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.headers[SECRET_HEADER], await request.read()))
        return web.Response(status=200 if len(seen) < 3 else 503, text="ok")

    app = web.Application()
    app.router.add_post("/tg/hook", hook)
    async with ServedApp(app) as agent:
        connection = AgentConnection(f"{agent.base_url}/tg/hook?x=1")
        try:
            statuses = [
                await connection.post(b'{"n": %d}' % n, SECRET_HEADER, "s3") for n in range(3)
            ]
            writer = connection._writer
            assert statuses == [200, 200, 503]
            assert seen == [("/tg/hook?x=1", "s3", b'{"n": %d}' % n) for n in range(3)]
            await connection.post(b"{}", SECRET_HEADER, "s3")
            assert connection._writer is writer  # the same connection throughout
        finally:
            await connection.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ],
    ids=["chunked", "interim-100", "no-body"],
)
async def test_bodies_are_read_to_their_end_and_the_connection_reused(
    raw_server: Callable[[Reply], Awaitable[RawServer]], answer: bytes
) -> None:
    server = await raw_server(lambda n, _: answer)
    first, second = await post_twice(server.url)
    assert first == second and first in (200, 204)
    assert server.connections == 1 and len(server.requests) == 2


@pytest.mark.parametrize(
    ("answer", "server_closes"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 200 OK\r\n\r\nbody up to the close", True),
    ],
    ids=["connection-close", "http-1.0", "close-delimited"],
)
async def test_a_closing_answer_gets_a_fresh_connection_next_time(
    raw_server: Callable[..., Awaitable[RawServer]], answer: bytes, server_closes: bool
) -> None:
    # A server that announced the close but keeps the socket open would still answer on
    # it; the client must not reuse it all the same.
    server = await raw_server(lambda n, _: answer, close_after_answer=server_closes)
    assert await post_twice(server.url) == (200, 200)
    assert server.connections == 2 and len(server.requests) == 2


async def test_idle_connection_closed_by_the_agent_is_retried_once(
    raw_server: Callable[[Reply], Awaitable[RawServer]],
) -> None:
    # The agent drops the kept-alive connection: the second request is read, then the
    # connection closes without an answer (what a keep-alive timeout race looks like).
    server = await raw_server(lambda n, _: OK if n == 0 else None)
    assert await post_twice(server.url) == (200, 200)
    assert server.connections == 2


async def test_no_retry_on_a_fresh_connection_or_after_a_partial_answer(
    raw_server: Callable[[Reply], Awaitable[RawServer]],
) -> None:
    silent = await raw_server(lambda n, _: None)
    connection = AgentConnection(silent.url)
    with pytest.raises(ForwardError):
        await connection.post(b"{}", SECRET_HEADER, "s")
    assert len(silent.requests) == 1

    cut = await raw_server(lambda n, _: OK if n == 0 else b"HTTP/1.1 200 OK\r\nContent-Le")
    connection = AgentConnection(cut.url)
    assert await connection.post(b"{}", SECRET_HEADER, "s") == 200
    with pytest.raises(ForwardError):
        await connection.post(b"{}", SECRET_HEADER, "s")
    assert len(cut.requests) == 2  # the agent may have taken it: not sent twice here


async def test_refused_garbled_and_silent_agents_are_forward_errors(
    raw_server: Callable[[Reply], Awaitable[RawServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = await raw_server(lambda n, _: OK)
    port = int(closed.url.split(":")[2].split("/")[0])
    with pytest.raises(ForwardError):
        await AgentConnection(f"http://127.0.0.1:{_free_port()}/x").post(b"{}", SECRET_HEADER, "s")

    garbled = await raw_server(lambda n, _: b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ForwardError):
        await AgentConnection(garbled.url).post(b"{}", SECRET_HEADER, "s")

    never = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await never.wait()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    monkeypatch.setattr(forward, "TOTAL_TIMEOUT_S", 0.2)
    try:
        hung = AgentConnection(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
        with pytest.raises(ForwardError):
            await hung.post(b"{}", SECRET_HEADER, "s")
        assert hung._writer is None  # out of step: never reused
    finally:
        never.set()
        server.close()
        await server.wait_closed()
    assert port > 0


def test_only_plain_http_and_header_safe_secrets() -> None:
    with pytest.raises(ValueError):
        AgentConnection("https://agent.example/x")
    assert forward.plain_http("http://a/b") and not forward.plain_http("https://a/b")


async def test_a_secret_that_would_split_the_header_is_refused(
    raw_server: Callable[[Reply], Awaitable[RawServer]],
) -> None:
    server = await raw_server(lambda n, _: OK)
    connection = AgentConnection(server.url)
    try:
        with pytest.raises(ForwardError):
            await connection.post(b"{}", SECRET_HEADER, "s\r\nX-Injected: 1")
    finally:
        await connection.close()
    assert server.requests == []


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_deadline_is_each_requests_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # One watchdog per connection: a request that started later is judged by its own
    # deadline, not by the one of the request that armed the watchdog.
    monkeypatch.setattr(forward, "TOTAL_TIMEOUT_S", 0.4)
    delays = iter([0.0, 0.3])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(next(delays))
                writer.write(OK)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    connection = AgentConnection(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
    try:
        assert await connection.post(b"{}", SECRET_HEADER, "s") == 200
        await asyncio.sleep(0.2)
        # Answered 0.5 s after the first request's start, 0.3 s after its own.
        assert await connection.post(b"{}", SECRET_HEADER, "s") == 200
    finally:
        await connection.close()
        server.close()
        await server.wait_closed()


async def test_a_cancelled_post_stays_cancelled(
    raw_server: Callable[[Reply], Awaitable[RawServer]],
) -> None:
    never = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await never.wait()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    connection = AgentConnection(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
    try:
        post = asyncio.create_task(connection.post(b"{}", SECRET_HEADER, "s"))
        await asyncio.sleep(0.1)
        post.cancel()  # a worker cancelled (lease lost, shutdown): not a forward error
        with pytest.raises(asyncio.CancelledError):
            await post
        assert connection._writer is None
    finally:
        never.set()
        server.close()
        await server.wait_closed()
