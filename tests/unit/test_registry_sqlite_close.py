"""SqliteRegistry.close() never frees the connection under a statement still running.

A cancelled caller leaves its worker thread running (asyncio.to_thread cannot be
interrupted); closing the connection under that thread crashed the interpreter
(seen as a segfault when a test's teardown cancelled delivery tasks and then
closed the registry)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import Tenant, TenantStatus

BOUND_S = 10.0


class RecordingConnection:
    """The real connection, recording when statements run and when it is closed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.events: list[str] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.events.append("execute")
        try:
            return self.conn.execute(sql, params)
        finally:
            self.events.append("executed")

    def close(self) -> None:
        self.events.append("close")
        self.conn.close()


async def test_close_waits_for_a_write_whose_caller_was_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    registry = SqliteRegistry(path)
    await registry.create(Tenant(tenant_id="alice", status=TenantStatus.IDLE))
    in_update = threading.Event()
    release = threading.Event()

    def hold_updates(statement: str) -> None:
        # Runs in the worker thread, inside the UPDATE's execution.
        if statement.startswith("UPDATE"):
            in_update.set()
            release.wait(BOUND_S)

    registry._conn.set_trace_callback(hold_updates)
    recording = RecordingConnection(registry._conn)
    registry._conn = recording  # type: ignore[assignment]
    write = asyncio.create_task(registry.update("alice", status=TenantStatus.RUNNING))
    assert await asyncio.to_thread(in_update.wait, BOUND_S)
    write.cancel()  # the caller gives up; its thread is still inside the UPDATE
    await asyncio.gather(write, return_exceptions=True)

    closing = asyncio.create_task(registry.close())
    # Give close() every chance to run now; it must queue behind the statement.
    await asyncio.wait([closing], timeout=0.5)
    release.set()
    async with asyncio.timeout(BOUND_S):
        await closing
    # Every statement finished before the connection was closed.
    assert recording.events[-2:] == ["executed", "close"], recording.events

    # The cancelled caller's write still completed, and the file is intact.
    check = sqlite3.connect(path)
    [(status, version)] = check.execute(
        "SELECT status, version FROM tenants WHERE tenant_id = 'alice'"
    ).fetchall()
    check.close()
    assert (status, version) == (TenantStatus.RUNNING.value, 2)
