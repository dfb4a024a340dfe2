"""Durable state of the stand-in agent, under the state dir so a restart resumes.

Laid out like OpenClaw's: a global database for the gateway and one directory per agent.

- ``agent-stub.sqlite`` (global, like OpenClaw's ``state/openclaw.sqlite``): the ingress spool
  (one row per accepted ``update_id``, which is also the de-duplication key across restarts).
  WAL with ``synchronous=FULL`` fsyncs each commit, so an update is on disk before the webhook
  acks it.
- ``agents/<id>/agent/stub-agent.sqlite`` (like ``openclaw-agent.sqlite``): per-session
  conversation history of agent ``<id>`` (``main`` unless the config names one agent).
- ``agents/<id>/agent/counter.json``: how many turns the agent has processed; the echo reply
  shows it, which makes persistence across sleep/wake visible from the outside.

``switch_agent`` opens another agent's files, as a warm gateway does when a config rewrite
replaces its throw-away agent with the tenant's (whose files were copied in just before).

SQLite calls run on one dedicated thread, so the event loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

DB_NAME = "agent-stub.sqlite"
AGENT_DB_NAME = "stub-agent.sqlite"
COUNTER_NAME = "counter.json"
DEFAULT_AGENT_ID = "main"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    update_id INTEGER NOT NULL UNIQUE,
    body TEXT NOT NULL,
    received_at REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
"""
_AGENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_session ON history (session, id);
"""

T = TypeVar("T")


@dataclass(frozen=True)
class SpooledUpdate:
    update_id: int
    body: dict[str, Any]


def agent_dir(state_dir: Path, agent_id: str = DEFAULT_AGENT_ID) -> Path:
    return state_dir / "agents" / agent_id / "agent"


def _connect(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    db.commit()
    return db


class AgentStore:
    def __init__(self, state_dir: Path, agent_id: str = DEFAULT_AGENT_ID) -> None:
        self.state_dir = state_dir
        self.agent_id = agent_id
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-store")
        self._db: sqlite3.Connection | None = None
        self._agent_db: sqlite3.Connection | None = None

    @property
    def agent_dir(self) -> Path:
        return agent_dir(self.state_dir, self.agent_id)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        self._db = _connect(self.state_dir / DB_NAME, _SCHEMA)
        self._agent_db = _connect(self.agent_dir / AGENT_DB_NAME, _AGENT_SCHEMA)

    async def switch_agent(self, agent_id: str) -> None:
        """Serve agent ``agent_id`` from now on (its files as they are on disk now)."""
        await self._run(self._switch_sync, agent_id)

    def _switch_sync(self, agent_id: str) -> None:
        if agent_id == self.agent_id:
            return
        if self._agent_db is not None:
            self._agent_db.close()
        self.agent_id = agent_id
        self._agent_db = _connect(self.agent_dir / AGENT_DB_NAME, _AGENT_SCHEMA)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def agent_db(self) -> sqlite3.Connection:
        if self._agent_db is None:
            raise RuntimeError("store is not open")
        return self._agent_db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        if self._agent_db is not None:
            await self._run(self.agent_db.close)
            self._agent_db = None
        self._executor.shutdown(wait=True)

    async def accept_update(self, update_id: int, body: dict[str, Any], received_at: float) -> bool:
        """Spool an update durably; False when this ``update_id`` was accepted before."""
        result: bool = await self._run(self._accept_sync, update_id, json.dumps(body), received_at)
        return result

    def _accept_sync(self, update_id: int, body: str, received_at: float) -> bool:
        with self.db:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO updates (update_id, body, received_at) VALUES (?, ?, ?)",
                (update_id, body, received_at),
            )
        return cursor.rowcount == 1

    async def pending_updates(self) -> list[SpooledUpdate]:
        """Accepted but unprocessed updates, in arrival order."""
        rows: list[tuple[int, str]] = await self._run(
            lambda: self.db.execute(
                "SELECT update_id, body FROM updates WHERE done = 0 ORDER BY seq"
            ).fetchall()
        )
        return [SpooledUpdate(update_id, json.loads(body)) for update_id, body in rows]

    async def mark_done(self, update_id: int) -> None:
        await self._run(self._mark_done_sync, update_id)

    def _mark_done_sync(self, update_id: int) -> None:
        with self.db:
            self.db.execute("UPDATE updates SET done = 1 WHERE update_id = ?", (update_id,))

    async def history(self, session: str) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = await self._run(
            lambda: self.agent_db.execute(
                "SELECT role, content FROM history WHERE session = ? ORDER BY id", (session,)
            ).fetchall()
        )
        return rows

    async def append_history(self, session: str, entries: list[tuple[str, str]]) -> None:
        await self._run(self._append_history_sync, session, entries)

    def _append_history_sync(self, session: str, entries: list[tuple[str, str]]) -> None:
        with self.agent_db:
            self.agent_db.executemany(
                "INSERT INTO history (session, role, content) VALUES (?, ?, ?)",
                [(session, role, content) for role, content in entries],
            )

    async def next_turn_number(self) -> int:
        """Increment and persist the tenant's turn counter; returns the new value."""
        result: int = await self._run(self._next_turn_sync)
        return result

    def _next_turn_sync(self) -> int:
        path = self.agent_dir / COUNTER_NAME
        try:
            count = int(json.loads(path.read_text()).get("count", 0))
        except (OSError, ValueError, AttributeError):
            count = 0
        count += 1
        write_json_durably(path, {"count": count})
        return count


def read_turn_count(state_dir: Path, agent_id: str = DEFAULT_AGENT_ID) -> int:
    """The persisted turn counter of an agent (0 when none); for tests and operators."""
    try:
        path = agent_dir(state_dir, agent_id) / COUNTER_NAME
        return int(json.loads(path.read_text()).get("count", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def write_json_durably(path: Path, data: Any) -> None:
    """Replace ``path`` atomically: a crash leaves the old or the new file, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
