"""What the dashboard reads and changes, as a protocol: the admin API in production
(otm/tui/api_source.py), an in-memory fake in tests.

Tenant records are the API's public JSON view (``Tenant.public()``): plain dicts, so
fields a newer daemon adds pass through untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Record = dict[str, Any]


class SourceError(Exception):
    """An operation failed; the message is fit to show to the operator as is."""


class SourceUnavailable(SourceError):
    """The daemon could not be reached (or the connection dropped): worth retrying."""


@dataclass(frozen=True)
class Snapshot:
    """The full tenant list; replaces whatever the dashboard had (first event, resyncs)."""

    items: tuple[Record, ...]


@dataclass(frozen=True)
class Upsert:
    tenant: Record


@dataclass(frozen=True)
class Delete:
    tenant_id: str


WatchEvent = Snapshot | Upsert | Delete


@dataclass(frozen=True)
class BufferInfo:
    pending: int
    dead_letters: int | None = None


@dataclass(frozen=True)
class TenantDetails:
    """Everything the describe screen shows about one tenant."""

    record: Record
    events: list[Record] = field(default_factory=list)
    buffer: BufferInfo | None = None
    """None when the daemon cannot tell (older daemon without the buffer endpoint)."""
    usage: Record | None = None
    """Model usage of the last 24 h (``GET /v1/usage`` item); None when unknown."""


class TenantSource(Protocol):
    """The dashboard's only door to the daemon. Every method may raise SourceError."""

    @property
    def label(self) -> str:
        """Where the data comes from (shown in the header), e.g. the admin URL."""
        ...

    def watch(self) -> AsyncIterator[WatchEvent]:
        """A Snapshot first, then Upsert/Delete for every change. Ends or raises
        SourceUnavailable when the connection drops; the caller reconnects."""
        ...

    async def get_status(self) -> Record:
        """GET /v1/status: daemon, redis, registry, runtime, warm_pool, config."""
        ...

    async def get_config(self) -> dict[str, Any]: ...

    async def set_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a partial change; SourceError with the daemon's reason when invalid."""
        ...

    async def wake(self, tenant_id: str) -> Record: ...

    async def sleep(self, tenant_id: str) -> Record: ...

    async def delete(self, tenant_id: str) -> None: ...

    async def suspend(self, tenant_id: str) -> Record: ...

    async def resume(self, tenant_id: str) -> Record: ...

    async def create(self, body: Mapping[str, Any]) -> Record:
        """POST /v1/tenants: ``body`` has tenant_id, bot_token and optional fields."""
        ...

    async def update(self, tenant_id: str, changes: Mapping[str, Any]) -> Record:
        """PATCH the tenant (labels, idle_timeout_s, image, bot_token)."""
        ...

    def logs(self, tenant_id: str, *, follow: bool, since_s: float | None) -> AsyncIterator[str]:
        """The agent's log lines; with ``follow`` keeps yielding until cancelled."""
        ...

    async def describe(self, tenant_id: str) -> TenantDetails: ...

    async def usage(self) -> dict[str, Record]:
        """Model usage of the last 24 h per tenant id (``GET /v1/usage``); {} when unknown."""
        ...

    async def buffered(self, tenant_id: str) -> int | None:
        """Buffered, not yet delivered updates (None: unknown)."""
        ...

    async def audit(self, tenant_id: str | None, *, limit: int) -> list[Record]:
        """The newest ``limit`` audit entries (of one tenant, or all), oldest first
        (``GET /v1/audit``)."""
        ...

    async def snapshots(self, tenant_id: str) -> list[Record]:
        """The tenant's snapshot history, newest first: key, taken_at, trigger, size."""
        ...

    async def restore(self, tenant_id: str, key: str) -> Record:
        """Restore snapshot ``key`` (sleep, restore, wake): {"tenant", "restored"}."""
        ...
