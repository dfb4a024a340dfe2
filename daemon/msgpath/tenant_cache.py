"""In-process cache of what the hot path needs to know about a tenant.

The router checks every webhook against the tenant's secret and status (and the Bot API
relay every agent call against the tenant's bot token); asking the registry each time would
put a DynamoDB read on the hot path. Entries live
``ttl_s`` (short), and are dropped at once when any replica publishes an event
for the tenant (created/updated/deleted/suspended/... on the events channel).
The TTL bounds staleness when an event is missed (pub/sub is lossy across
reconnects: the listener clears the whole cache when it reconnects). An entry past its
TTL still answers for ``stale_s`` while one background read refreshes it: a webhook
never waits for the registry because its tenant's entry just expired (at 1,000 busy
tenants 200 entries expire a second, and each such wait queued behind the others).

Unknown tenants are cached too (negatively, for a shorter time) so a flood of
webhooks for a deleted tenant costs no registry reads; a ``created`` event
drops the negative entry immediately.

Bounded against anonymous clients (anyone can POST to ``/tg/<any id>``):
positive and negative entries are two separate LRUs of fixed size (bogus ids
evict only each other, never a real tenant), and registry reads for ids never
seen to exist are rate-limited (token bucket). Beyond the budget such a lookup
raises ``LookupThrottled`` (the router answers 503; Telegram retries). Ids once
found to exist ("known", a bounded LRU) are always read, so a flood of bogus ids
does not delay real tenants. A tenant some replica announces it created or woke
(``mark_known``, from the events channel) is known from then on, and so is every tenant
running or being woken when the daemon starts (``learn_running``, one registry scan): after
a restart their first webhooks do not compete with a flood for the budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import TypeVar

from daemon.cancellation import cancel_and_wait
from daemon.model import TenantNotFound, TenantStatus
from daemon.ports import Registry

_V = TypeVar("_V")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantInfo:
    tenant_id: str
    status: TenantStatus
    webhook_secret: bytes
    bot_token: bytes = b""
    """What the Bot API relay checks an agent's calls against (model_gateway/bot_api_relay)."""

    def __repr__(self) -> str:  # the secrets must never reach a log line
        return f"TenantInfo({self.tenant_id!r}, {self.status.value!r})"


class LookupThrottled(Exception):
    """Too many registry reads for unknown tenant ids right now (retry later)."""


@dataclass(eq=False)
class TenantCache:
    registry: Registry
    _: KW_ONLY
    ttl_s: float = 5.0
    negative_ttl_s: float = 2.0
    max_entries: int = 10_000
    max_negative: int = 10_000
    max_known: int = 100_000
    unknown_reads_per_s: float = 50.0
    unknown_reads_burst: int = 100
    stale_s: float = 5.0
    """How long past ``ttl_s`` an entry still answers while a background read refreshes
    it; a refresh that fails leaves it to lapse then (the next lookup reads, and fails)."""
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, TenantInfo]] = OrderedDict()
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._known: OrderedDict[str, None] = OrderedDict()
        self._tokens = float(self.unknown_reads_burst)
        self._tokens_at = self.clock()
        self._loading: dict[str, asyncio.Future[TenantInfo | None]] = {}
        self._generation = 0
        self._refreshing: set[asyncio.Task[TenantInfo | None]] = set()
        self.throttled = 0

    async def get(self, tenant_id: str) -> TenantInfo | None:
        """The tenant's info, or None if it does not exist (or is deleted).
        Raises LookupThrottled for an uncached, never-seen id beyond the read budget."""
        now = self.clock()
        entry = self._entries.get(tenant_id)
        if entry is not None and entry[0] + self.stale_s > now:
            self._entries.move_to_end(tenant_id)
            if entry[0] <= now and tenant_id not in self._loading:
                self._refresh(tenant_id)
            return entry[1]
        negative = self._negative.get(tenant_id)
        if negative is not None and negative > now:
            return None
        # Single flight: concurrent misses for one tenant share one registry read.
        loading = self._loading.get(tenant_id)
        if loading is not None:
            return await asyncio.shield(loading)
        if tenant_id not in self._known and not self._take_token(now):
            self.throttled += 1
            raise LookupThrottled(tenant_id)
        return await self._read(tenant_id, self._start_read(tenant_id))

    def _start_read(self, tenant_id: str) -> asyncio.Future[TenantInfo | None]:
        """Registered at once (not when a task first runs): a lookup in the same loop turn
        joins this read instead of starting another."""
        future: asyncio.Future[TenantInfo | None] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        return future

    async def _read(
        self, tenant_id: str, future: asyncio.Future[TenantInfo | None]
    ) -> TenantInfo | None:
        """One registry read, shared by every lookup of the tenant until it answers."""
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
            self._store(tenant_id, info)
        future.set_result(info)
        return info

    def _refresh(self, tenant_id: str) -> None:
        future = self._start_read(tenant_id)
        task = asyncio.create_task(self._read(tenant_id, future), name=f"tenant-cache:{tenant_id}")
        self._refreshing.add(task)
        task.add_done_callback(lambda done: self._refreshed(tenant_id, future, done))

    def _refreshed(
        self,
        tenant_id: str,
        future: asyncio.Future[TenantInfo | None],
        task: asyncio.Task[TenantInfo | None],
    ) -> None:
        self._refreshing.discard(task)
        if task.cancelled():
            # Cancelled before it ran (close): nobody may wait for its read forever.
            if self._loading.get(tenant_id) is future:
                del self._loading[tenant_id]
            future.cancel()
        elif (exc := task.exception()) is not None:
            # The stale entry answers on until stale_s; then lookups read (and fail) themselves.
            log.debug("refreshing %s failed: %s", task.get_name(), exc)

    async def close(self) -> None:
        """Cancel refreshes in flight (before the registry closes)."""
        await cancel_and_wait(list(self._refreshing), timeout=5)

    def _store(self, tenant_id: str, info: TenantInfo | None) -> None:
        now = self.clock()
        if info is None:
            self._entries.pop(tenant_id, None)
            self._negative[tenant_id] = now + self.negative_ttl_s
            self._negative.move_to_end(tenant_id)
            _trim(self._negative, self.max_negative)
            return
        self._negative.pop(tenant_id, None)
        self._entries[tenant_id] = (now + self.ttl_s, info)
        self._entries.move_to_end(tenant_id)
        _trim(self._entries, self.max_entries)
        self.mark_known(tenant_id)

    def _take_token(self, now: float) -> bool:
        elapsed = max(0.0, now - self._tokens_at)
        self._tokens_at = now
        self._tokens = min(
            float(self.unknown_reads_burst), self._tokens + elapsed * self.unknown_reads_per_s
        )
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def _load(self, tenant_id: str) -> TenantInfo | None:
        try:
            tenant = await self.registry.get(tenant_id)
        except TenantNotFound:
            return None
        if tenant.status == TenantStatus.DELETED:
            return None
        return TenantInfo(
            tenant_id, tenant.status, tenant.webhook_secret.encode(), tenant.bot_token.encode()
        )

    async def learn_running(self) -> int:
        """Mark every tenant now running or being woken as known (at start-up: after a
        restart, 1,000 busy tenants' first webhooks were answered 503 for ~20 s while each
        waited for the unknown-id budget). How many it marked."""
        learned = 0
        for status in (TenantStatus.RUNNING, TenantStatus.PROVISIONING):
            async for page in self.registry.scan(status=status):
                for tenant in page:
                    self.mark_known(tenant.tenant_id)
                learned += len(page)
        return learned

    def mark_known(self, tenant_id: str) -> None:
        """The tenant exists (a replica created or woke it): its reads skip the budget."""
        self._known[tenant_id] = None
        self._known.move_to_end(tenant_id)
        _trim(self._known, self.max_known)

    def knows(self, tenant_id: str) -> bool:
        """Whether the tenant's reads skip the unknown-id budget."""
        return tenant_id in self._known

    def invalidate(self, tenant_id: str) -> None:
        self._generation += 1
        self._entries.pop(tenant_id, None)
        self._negative.pop(tenant_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._negative.clear()

    def __len__(self) -> int:
        return len(self._entries) + len(self._negative)


def _trim(lru: OrderedDict[str, _V], limit: int) -> None:
    while len(lru) > limit:
        lru.popitem(last=False)
