"""In-process cache of what the hot path needs to know about a tenant.

The router checks every webhook against the tenant's secret and status; asking
the registry each time would put a DynamoDB read on the hot path. Entries live
``ttl_s`` (short), and are dropped at once when any replica publishes an event
for the tenant (created/updated/deleted/suspended/... on the events channel).
The TTL bounds staleness when an event is missed (pub/sub is lossy across
reconnects: the listener clears the whole cache when it reconnects).

Unknown tenants are cached too (negatively, for a shorter time) so a flood of
webhooks for a deleted tenant costs no registry reads; a ``created`` event
drops the negative entry immediately.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from daemon.model import TenantNotFound, TenantStatus
from daemon.ports import Registry


@dataclass(frozen=True)
class TenantInfo:
    tenant_id: str
    status: TenantStatus
    webhook_secret: bytes

    def __repr__(self) -> str:  # the secret must never reach a log line
        return f"TenantInfo({self.tenant_id!r}, {self.status.value!r})"


class TenantCache:
    def __init__(self, registry: Registry, *, ttl_s: float = 5.0, negative_ttl_s: float = 2.0):
        self.registry = registry
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._entries: dict[str, tuple[float, TenantInfo | None]] = {}
        self._loading: dict[str, asyncio.Future[TenantInfo | None]] = {}
        self._generation = 0

    async def get(self, tenant_id: str) -> TenantInfo | None:
        """The tenant's info, or None if it does not exist (or is deleted)."""
        entry = self._entries.get(tenant_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        # Single flight: concurrent misses for one tenant share one registry read.
        loading = self._loading.get(tenant_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[TenantInfo | None] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        generation = self._generation
        try:
            info = await self._load(tenant_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._loading.pop(tenant_id, None)
        # An invalidation during the read means the value may be stale: use it
        # for this request, but do not keep it.
        if generation == self._generation:
            ttl = self.ttl_s if info is not None else self.negative_ttl_s
            self._entries[tenant_id] = (time.monotonic() + ttl, info)
        future.set_result(info)
        return info

    async def _load(self, tenant_id: str) -> TenantInfo | None:
        try:
            tenant = await self.registry.get(tenant_id)
        except TenantNotFound:
            return None
        if tenant.status == TenantStatus.DELETED:
            return None
        return TenantInfo(tenant_id, tenant.status, tenant.webhook_secret.encode())

    def invalidate(self, tenant_id: str) -> None:
        self._generation += 1
        self._entries.pop(tenant_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
