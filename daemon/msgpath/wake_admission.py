"""Wake admission control: at most ``max_concurrent_wakes`` (live config) wakes at once across
every replica; over the cap, wakes wait in one FIFO queue (one entry per tenant, so fair
across tenants) while their messages stay buffered.

State lives in Redis, changed only by one Lua script at a time (one clock: Redis ``TIME``):

- ``holders``: tenants being woken, scored by lease expiry (renewed while the wake runs, so
  a crashed replica's slot frees itself within ``LEASE_S``);
- ``queue``: waiting tenants, scored by arrival order; ``alive`` holds each entry's lease
  (renewed while its waiter waits), so a dead replica's entries leave the queue.

A waiter is admitted when its queue position is below the free slots: strictly in order.
Waiters re-check when a slot is released on this replica, and every ``RECHECK_S`` for releases
elsewhere and expired leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge

from daemon.coordination import keep_renewed
from daemon.redis_keys import WAKE_ADMISSION_PREFIX

log = logging.getLogger(__name__)

PREFIX = WAKE_ADMISSION_PREFIX  # one hash tag: _ACQUIRE_LUA touches all four keys
HOLDERS, QUEUE, ALIVE, SEQ = (PREFIX + k for k in ("holders", "queue", "alive", "seq"))
LEASE_S = 30.0
RECHECK_S = 1.0

_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tenant, cap, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local dead = redis.call('zrangebyscore', KEYS[3], '-inf', now)
for _, d in ipairs(dead) do
  redis.call('zrem', KEYS[2], d)
  redis.call('zrem', KEYS[3], d)
end
if redis.call('zscore', KEYS[1], tenant) then
  redis.call('zadd', KEYS[1], now + lease, tenant)
  return {-1, redis.call('zcard', KEYS[1]), redis.call('zcard', KEYS[2])}
end
if not redis.call('zscore', KEYS[2], tenant) then
  redis.call('zadd', KEYS[2], redis.call('incr', KEYS[4]), tenant)
end
redis.call('zadd', KEYS[3], now + lease, tenant)
local free = cap - redis.call('zcard', KEYS[1])
local rank = redis.call('zrank', KEYS[2], tenant)
if rank < free then
  redis.call('zrem', KEYS[2], tenant)
  redis.call('zrem', KEYS[3], tenant)
  redis.call('zadd', KEYS[1], now + lease, tenant)
  rank = -1
end
return {rank, redis.call('zcard', KEYS[1]), redis.call('zcard', KEYS[2])}
"""
_RENEW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('zscore', KEYS[1], ARGV[1]) then
  redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
_LEAVE_LUA = """
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
redis.call('zrem', KEYS[3], ARGV[1])
return {redis.call('zcard', KEYS[1]), redis.call('zcard', KEYS[2])}
"""


@dataclass(frozen=True)
class AdmissionSnapshot:
    cap: int
    in_progress: list[str]
    queued: list[str]
    """In admission order."""


class AdmissionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_progress = Gauge(
            "otm_wakes_in_progress",
            "Wakes holding an admission slot (cluster-wide)",
            registry=registry,
        )
        self.queued = Gauge(
            "otm_wake_queue_length",
            "Wakes waiting for an admission slot (cluster-wide)",
            registry=registry,
        )
        self.cap = Gauge(
            "otm_wake_admission_cap", "Live config max_concurrent_wakes", registry=registry
        )


class WakeAdmission:
    def __init__(
        self,
        redis: aioredis.Redis,
        cap: Callable[[], Awaitable[int]],
        metrics: AdmissionMetrics | None = None,
    ) -> None:
        self.redis = redis
        self._cap = cap
        self.metrics = metrics
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._leave = redis.register_script(_LEAVE_LUA)
        self._released = asyncio.Event()

    def _observe(self, holders: int, queued: int, cap: int | None = None) -> None:
        if self.metrics is not None:
            self.metrics.in_progress.set(holders)
            self.metrics.queued.set(queued)
            if cap is not None:
                self.metrics.cap.set(cap)

    async def try_acquire(self, tenant_id: str) -> int | None:
        """None if admitted (a slot is held), else the tenant's 0-based queue position."""
        cap = await self._cap()
        rank, holders, queued = await self._acquire(
            keys=[HOLDERS, QUEUE, ALIVE, SEQ], args=[tenant_id, cap, int(LEASE_S * 1000)]
        )
        self._observe(int(holders), int(queued), cap)
        return None if int(rank) < 0 else int(rank)

    async def release(self, tenant_id: str) -> None:
        holders, queued = await self._leave(keys=[HOLDERS, QUEUE, ALIVE], args=[tenant_id])
        self._observe(int(holders), int(queued))
        # Wake this replica's waiters; others re-check within RECHECK_S.
        self._released.set()
        self._released = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        """Wait (in FIFO order) for a slot, hold it (lease renewed) for the block."""
        try:
            while (position := await self.try_acquire(tenant_id)) is not None:
                if position == 0:
                    log.debug("wake of %s is next in the admission queue", tenant_id)
                released = self._released
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_S):
                        await released.wait()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release(tenant_id))
            raise
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep(tenant_id, done), name=f"wake-slot:{tenant_id}")
        try:
            yield
        finally:
            done.set()
            keeper.cancel()
            try:
                await asyncio.shield(self.release(tenant_id))
            except Exception as exc:  # the lease expires on its own
                log.warning("could not release the wake slot of %s: %s", tenant_id, exc)

    async def _keep(self, tenant_id: str, done: asyncio.Event) -> None:
        async def renew() -> bool:
            return bool(await self._renew(keys=[HOLDERS], args=[tenant_id, int(LEASE_S * 1000)]))

        await keep_renewed(f"the wake slot of {tenant_id}", renew, LEASE_S, done)

    async def snapshot(self) -> AdmissionSnapshot:
        cap = await self._cap()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrange(HOLDERS, 0, -1)
            pipe.zrange(QUEUE, 0, -1)
            holders, queued = await pipe.execute()

        def names(raw: list[bytes | str]) -> list[str]:
            return [r.decode() if isinstance(r, bytes) else r for r in raw]

        return AdmissionSnapshot(cap=cap, in_progress=names(holders), queued=names(queued))
