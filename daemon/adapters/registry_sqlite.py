"""Registry on a SQLite file: the embedded default.

Conditional writes are single UPDATE statements whose WHERE clause carries
the condition; SQLite executes each atomically, so two daemon processes
sharing the file still cannot both win a transition.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.model import (
    ConditionFailed,
    Tenant,
    TenantExists,
    TenantNotFound,
    TenantStatus,
    check_changes,
    tenant_from_record,
    tenant_to_record,
    utcnow,
    validate_tenant_id,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
);
-- (status, tenant_id): a status's records page in id order straight off the index
-- (scan); it replaces the first schema's index on status alone.
CREATE INDEX IF NOT EXISTS tenants_status_id ON tenants(status, tenant_id);
DROP INDEX IF EXISTS tenants_status;
"""


SCAN_PAGE_SIZE = 500
"""Records per ``scan`` page: one short statement each (the lock is free in between)."""


class SqliteRegistry:
    def __init__(self, path: Path, *, page_size: int = SCAN_PAGE_SIZE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.page_size = page_size
        # One connection used from one worker thread at a time (the lock);
        # busy_timeout lets a second daemon process on the same file wait
        # instead of failing.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._lock = asyncio.Lock()
        # Held by the worker thread for the whole call. The asyncio lock alone
        # is released when the awaiting task is cancelled while its thread
        # still runs; close() must never free the connection under a running
        # statement (that crashed the interpreter), so it waits on this too.
        self._thread_lock = threading.Lock()

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self._thread_lock:
            return fn(*args)

    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(self._locked, fn, *args)

    async def create(self, tenant: Tenant) -> Tenant:
        record = tenant_to_record(tenant)

        def insert() -> None:
            try:
                self._conn.execute(
                    "INSERT INTO tenants (tenant_id, status, version, record) VALUES (?, ?, ?, ?)",
                    (tenant.tenant_id, tenant.status.value, tenant.version, json.dumps(record)),
                )
            except sqlite3.IntegrityError:
                raise TenantExists(tenant.tenant_id) from None

        await self._run(insert)
        return tenant

    def _get_sync(self, tenant_id: str) -> Tenant:
        row = self._conn.execute(
            "SELECT record FROM tenants WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()
        if row is None:
            raise TenantNotFound(tenant_id)
        return tenant_from_record(json.loads(row[0]))

    async def get(self, tenant_id: str) -> Tenant:
        validate_tenant_id(tenant_id)
        result: Tenant = await self._run(self._get_sync, tenant_id)
        return result

    async def list(self, *, status: TenantStatus | None = None) -> list[Tenant]:
        # Page by page (id order): the connection is free for other calls in between.
        return [tenant async for page in self.scan(status=status) for tenant in page]

    async def scan(
        self, *, status: TenantStatus | None = None
    ) -> AsyncIterator[builtins.list[Tenant]]:
        # Keyset pages in id order: each page is its own statement, so no read
        # transaction stays open across pages (and writers are never held up by one).
        after = ""
        while True:
            page: builtins.list[Tenant] = await self._run(self._page_sync, status, after)
            if not page:
                return
            after = page[-1].tenant_id
            yield page
            if len(page) < self.page_size:
                return

    def _page_sync(self, status: TenantStatus | None, after: str) -> builtins.list[Tenant]:
        if status is None:
            rows = self._conn.execute(
                "SELECT record FROM tenants WHERE tenant_id > ? ORDER BY tenant_id LIMIT ?",
                (after, self.page_size),
            )
        else:
            rows = self._conn.execute(
                "SELECT record FROM tenants WHERE status = ? AND tenant_id > ? "
                "ORDER BY tenant_id LIMIT ?",
                (status.value, after, self.page_size),
            )
        return [tenant_from_record(json.loads(r[0])) for r in rows]

    async def count_by_status(self) -> dict[TenantStatus, int]:
        def count() -> builtins.list[tuple[str, int]]:
            query = "SELECT status, COUNT(*) FROM tenants GROUP BY status"
            return list(self._conn.execute(query))

        rows: builtins.list[tuple[str, int]] = await self._run(count)
        return {TenantStatus(status): n for status, n in rows}

    async def update(
        self,
        tenant_id: str,
        *,
        if_status: Collection[TenantStatus] | None = None,
        if_version: int | None = None,
        **changes: Any,
    ) -> Tenant:
        validate_tenant_id(tenant_id)
        clean = check_changes(changes)

        def write() -> Tenant:
            current = self._get_sync(tenant_id)
            if if_status is not None and current.status not in if_status:
                wanted = ", ".join(sorted(s.value for s in if_status))
                raise ConditionFailed(
                    tenant_id, f"status is {current.status.value}, expected one of {wanted}"
                )
            if if_version is not None and current.version != if_version:
                raise ConditionFailed(
                    tenant_id, f"version is {current.version}, expected {if_version}"
                )
            updated = replace(current, **clean, version=current.version + 1, updated_at=utcnow())
            # The WHERE on version makes read-modify-write atomic against
            # another process writing between our SELECT and UPDATE.
            cursor = self._conn.execute(
                "UPDATE tenants SET status = ?, version = ?, record = ? "
                "WHERE tenant_id = ? AND version = ?",
                (
                    updated.status.value,
                    updated.version,
                    json.dumps(tenant_to_record(updated)),
                    tenant_id,
                    current.version,
                ),
            )
            if cursor.rowcount != 1:
                raise ConditionFailed(tenant_id, "record changed concurrently")
            return updated

        result: Tenant = await self._run(write)
        return result

    async def touch(self, tenant_id: str, at: datetime) -> None:
        def write() -> None:
            row = self._conn.execute(
                "SELECT record FROM tenants WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
            if row is None:
                return
            record = json.loads(row[0])
            if datetime.fromisoformat(record["last_active_at"]) >= at:
                return
            record["last_active_at"] = at.isoformat()
            # Conditional on the exact record we read: a concurrent lifecycle
            # write wins and this touch is simply retried by the next message.
            self._conn.execute(
                "UPDATE tenants SET record = ? WHERE tenant_id = ? AND record = ?",
                (json.dumps(record), tenant_id, row[0]),
            )

        await self._run(write)

    async def delete(self, tenant_id: str) -> None:
        validate_tenant_id(tenant_id)

        def remove() -> None:
            cursor = self._conn.execute("DELETE FROM tenants WHERE tenant_id = ?", (tenant_id,))
            if cursor.rowcount != 1:
                raise TenantNotFound(tenant_id)

        await self._run(remove)

    async def close(self) -> None:
        await self._run(self._conn.close)
