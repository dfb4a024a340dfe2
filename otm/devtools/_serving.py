"""Run a small aiohttp app on loopback, in-process or as the main program of a process.

The fakes share this so that each of them is usable as ``async with Server(...) as s: s.base_url``
in a test and as ``python -m otm.devtools.<fake> --port N`` for the local demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from aiohttp import web


class AppServer:
    """An aiohttp app bound to ``host:port`` (port 0 picks a free one) for the life of a context."""

    shutdown_timeout_s = 1.0
    """Short: the fakes hold no state worth waiting for, and a test's teardown should not
    stall on a client that keeps a connection open."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, shutdown_timeout=self.shutdown_timeout_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        await site.start()
        self._port = bound_port(site)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class ServedApp(AppServer):
    """A ready-made app (a test's own handlers, daemon routes under test) served the same way."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.app = app

    def build_app(self) -> web.Application:
        return self.app


@dataclass
class ChangeNotifier:
    """Lets tests wait, event-driven and bounded, for a fake's recorded state to change."""

    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        # Waiters hold the event that was current when they looked; setting it wakes them,
        # and a fresh event makes the next change observable too.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds, at most ``timeout_s``; True if it did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                return predicate()
        return True


def bound_port(site: web.TCPSite) -> int:
    """The port a started site actually listens on (needed when it was asked for port 0)."""
    server = site._server  # aiohttp exposes no public accessor for the bound sockets
    if server is None or not getattr(server, "sockets", None):
        raise RuntimeError("site is not listening")
    sock: socket.socket = server.sockets[0]  # type: ignore[attr-defined]
    port: int = sock.getsockname()[1]
    return port


class ServingMain:
    """A fake's ``main(argv=None)``: ``make_server(host=..., port=...)`` served until a signal."""

    def __init__(self, description: str, make_server: Callable[..., AppServer]) -> None:
        self.description = description
        self.make_server = make_server

    def __call__(self, argv: list[str] | None = None) -> int:
        make = self.make_server
        return serve_forever_main(
            self.description, lambda host, port: make(host=host, port=port), argv
        )


def serve_forever_main(
    description: str,
    make_server: Callable[[str, int], AppServer],
    argv: list[str] | None = None,
) -> int:
    """``python -m`` entry: start, print the base URL on one line, stop on SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with make_server(args.host, args.port) as server:
            print(server.base_url, flush=True)
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    sys.stdout.flush()
    return 0
