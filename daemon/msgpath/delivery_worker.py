"""A delivery worker's own state, and the one loop that renews every worker's lease.

Split from daemon/msgpath/delivery.py, which drives the workers; here is what makes a
worker cheap when a replica has a thousand of them alive (1,000 tenants with light
traffic each): no buffer read for an update handed over with its notify, one idle timer
per worker instead of one per wait (lazy_deadline.py), and one lease renewal round trip
per tick for the whole replica instead of one per worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from daemon.coordination import Coordination
from daemon.msgpath.buffer import BufferedUpdate
from daemon.msgpath.lazy_deadline import LazyDeadline
from daemon.redis_keys import delivery_lease_name as lease_name

log = logging.getLogger(__name__)


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair (ids grow with each XADD)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Worker:
    """What a tenant's live worker is woken with, and what it has seen."""

    poke: asyncio.Event = field(default_factory=asyncio.Event)
    handed: BufferedUpdate | None = None
    """The update an append on this replica returned as the only one buffered."""
    seen_upto: tuple[int, int] | None = None
    """The newest entry this worker has read or taken (None before the first)."""
    _idle: bool = field(default=False, repr=False)
    _idle_deadline: LazyDeadline = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._idle_deadline = LazyDeadline(self._expire)

    def take_handed(self) -> BufferedUpdate | None:
        """The handed update if it may be delivered without reading the buffer: its append
        found the buffer empty (nothing older waits: order), and it is newer than every
        update this worker has seen. While this worker holds the lease only it removes
        entries, and only ones it has seen: so the update is still buffered and this
        worker has not delivered it. Earlier holders delivered in order, so all they
        removed is older than anything this worker has seen; a worker that has seen
        nothing cannot tell, and reads the buffer."""
        handed, self.handed = self.handed, None
        if handed is None or self.seen_upto is None:
            return None
        return handed if entry_order(handed.entry_id) > self.seen_upto else None

    def saw(self, batch: list[BufferedUpdate]) -> None:
        if batch:
            self.seen_upto = entry_order(batch[-1].entry_id)

    async def wait_for_work(self, idle_s: float) -> bool:
        """Wait for a poke; False when none came within ``idle_s``."""
        self._idle_deadline.arm(idle_s)
        try:
            await self.poke.wait()
        finally:
            self._idle_deadline.disarm()
        return not self._idle

    def _expire(self) -> None:
        self._idle = True
        self.poke.set()

    def stop_timer(self) -> None:
        self._idle_deadline.stop()


@dataclass(eq=False)
class HeldLease:
    token: str
    worker: asyncio.Task[Any]


Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[Any]]


@dataclass(eq=False)
class LeaseKeeper:
    """Extends every delivery lease this replica's workers hold, each third of its TTL,
    all in one round trip (per node on a cluster): a renewal task per worker cost a
    round trip per tenant per tick (~600/s at 1,000 live tenants). A failed round trip
    is retried at the next tick; a lease found lost cancels its worker. Acks are fenced
    on the token, so even a worker that misses this cancel cannot remove an entry."""

    coordination: Coordination
    ttl_s: float
    spawn: Spawn
    held: dict[str, HeldLease] = field(default_factory=dict, init=False)
    _loop: asyncio.Task[Any] | None = field(default=None, init=False, repr=False)

    def hold(self, tenant_id: str, token: str, worker: asyncio.Task[Any]) -> HeldLease:
        lease = HeldLease(token, worker)
        self.held[tenant_id] = lease
        if self._loop is None or self._loop.done():
            self._loop = self.spawn(self._renew_forever(), "delivery-leases")
        return lease

    def forget(self, tenant_id: str, lease: HeldLease) -> None:
        """Stop renewing (before the release: a lease seen gone after it is no loss)."""
        if self.held.get(tenant_id) is lease:
            del self.held[tenant_id]

    async def _renew_forever(self) -> None:
        """Ends when no lease is held; the next ``hold`` starts it again."""
        while self.held:
            await asyncio.sleep(self.ttl_s / 3)
            held = list(self.held.items())
            if not held:
                return
            names = [(lease_name(tenant_id), lease.token) for tenant_id, lease in held]
            try:
                kept = await self.coordination.extend_locks(names, self.ttl_s)
            except (aioredis.RedisError, OSError) as exc:
                log.warning("could not extend %d delivery leases: %s", len(held), exc)
                continue
            for (tenant_id, lease), still_held in zip(held, kept, strict=True):
                if not still_held and self.held.get(tenant_id) is lease:
                    log.error("lost the delivery lease of %s while holding it", tenant_id)
                    del self.held[tenant_id]
                    lease.worker.cancel()
