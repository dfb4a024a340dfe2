"""Per-tenant limits, checked in Redis before anything is forwarded (shared by all replicas).

Requests per minute and inbound messages per minute are fixed one-minute windows
(``INCR`` + ``EXPIRE`` in one script, kept out of the AOF); tokens per day compare the day's
counted usage (``usage.py``) with the quota. A refusal carries the seconds until the window
reopens, for ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from daemon.model_gateway.usage import UsageStore
from daemon.redis_keys import rate_window_key

# A window's count is not worth an fsync: the script keeps it out of the AOF (and replicas),
# so with appendfsync always a request does not wait for the disk (measured: 8 ms per
# request on this VM). A Redis restart forgets the current minute's counts, nothing more.
_TAKE_LUA = """
redis.set_repl(redis.REPL_NONE)
local count = redis.call('incr', KEYS[1])
if count == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
return count
"""


@dataclass(frozen=True)
class Refusal:
    reason: str
    retry_after_s: int


class MinuteWindow:
    """At most ``limit`` events per tenant per wall-clock window (0: unlimited)."""

    def __init__(self, redis: aioredis.Redis, name: str, limit: int, window_s: int = 60) -> None:
        self.redis = redis
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self._take = redis.register_script(_TAKE_LUA)

    async def take(self, tenant_id: str, now: float | None = None) -> int | None:
        """None if allowed (and counted), else seconds until the next window."""
        if self.limit <= 0:
            return None
        now = time.time() if now is None else now
        window = int(now // self.window_s)
        key = rate_window_key(tenant_id, self.name, self.window_s, window)
        count = await self._take(keys=[key], args=[2 * self.window_s])
        if int(count) <= self.limit:
            return None
        return max(1, math.ceil((window + 1) * self.window_s - now))


class ModelLimits:
    def __init__(
        self,
        redis: aioredis.Redis,
        usage: UsageStore,
        *,
        requests_per_min: int,
        tokens_per_day: int,
        window_s: int = 60,
    ) -> None:
        self.requests = MinuteWindow(redis, "model-requests", requests_per_min, window_s)
        self.usage = usage
        self.tokens_per_day = tokens_per_day

    async def check(self, tenant_id: str, now: datetime | None = None) -> Refusal | None:
        """Refusal if the tenant is over a limit; otherwise the request is counted."""
        now = now or datetime.now(UTC)
        if self.tokens_per_day > 0:
            used = await self.usage.tokens_today(tenant_id, now)
            if used >= self.tokens_per_day:
                midnight = (now + timedelta(days=1)).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                return Refusal(
                    f"daily token quota of {self.tokens_per_day} reached",
                    max(1, math.ceil((midnight - now).total_seconds())),
                )
        wait = await self.requests.take(tenant_id, now.timestamp())
        if wait is not None:
            return Refusal(f"rate limit of {self.requests.limit} requests per minute", wait)
        return None
