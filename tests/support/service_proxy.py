"""A stand-in for a Kubernetes Service in front of daemon replicas running on one host.

On a cluster, agents reach the daemons' agent-facing listener (model gateway, Bot API relay)
through the ``otm-model-gateway`` Service, which routes each connection to a live replica.
Replica processes of a test listen on ports of their own; this proxy gives them one address:
each TCP connection goes to the first backend port that accepts it (a killed replica
refuses), bytes are piped both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class ServiceProxy:
    """``async with ServiceProxy([port_a, port_b]) as svc: svc.port``."""

    def __init__(self, backend_ports: list[int]) -> None:
        self.backend_ports = backend_ports
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for port in self.backend_ports:
            with contextlib.suppress(OSError):
                return await asyncio.open_connection("127.0.0.1", port)
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
