"""Per-tenant model usage, durable in Redis, in hourly buckets.

``otm:{t:<tenant>}:usage:{YYYYMMDDHH}`` is a hash of ``<model>|requests``,
``<model>|prompt_tokens`` and ``<model>|completion_tokens`` counters (kept ``RETENTION_S``);
``otm:{t:<tenant>}:usage-day:{YYYYMMDD}`` totals the day's tokens for the daily quota. One MULTI
per request writes both (one slot: the tenant's hash tag), so a report summed over buckets
equals the sum of the upstream's reported usage exactly. The index of tenants with usage is a
global key, written before the MULTI: a crash in between leaves an indexed tenant whose usage
reads as zero, never usage missing from the index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from daemon.redis_keys import USAGE_TENANTS_KEY, usage_day_key, usage_hour_key

TENANTS_KEY = USAGE_TENANTS_KEY
RETENTION_S = 400 * 86400
DAY_RETENTION_S = 3 * 86400
COUNTERS = ("requests", "prompt_tokens", "completion_tokens")


def hour_key(tenant_id: str, at: datetime) -> str:
    return usage_hour_key(tenant_id, f"{at.astimezone(UTC):%Y%m%d%H}")


def day_key(tenant_id: str, at: datetime) -> str:
    return usage_day_key(tenant_id, f"{at.astimezone(UTC):%Y%m%d}")


@dataclass
class ModelUsage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class TenantUsage:
    tenant_id: str
    models: dict[str, ModelUsage] = field(default_factory=dict)

    def total(self) -> ModelUsage:
        out = ModelUsage()
        for usage in self.models.values():
            out.requests += usage.requests
            out.prompt_tokens += usage.prompt_tokens
            out.completion_tokens += usage.completion_tokens
        return out


class UsageStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def record(
        self,
        tenant_id: str,
        model: str,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        at: datetime | None = None,
    ) -> None:
        at = at or datetime.now(UTC)
        hour, day = hour_key(tenant_id, at), day_key(tenant_id, at)
        await self.redis.sadd(TENANTS_KEY, tenant_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(hour, f"{model}|requests", 1)
            pipe.hincrby(hour, f"{model}|prompt_tokens", prompt_tokens)
            pipe.hincrby(hour, f"{model}|completion_tokens", completion_tokens)
            pipe.expire(hour, RETENTION_S)
            pipe.incrby(day, prompt_tokens + completion_tokens)
            pipe.expire(day, DAY_RETENTION_S)
            await pipe.execute()

    async def tokens_today(self, tenant_id: str, at: datetime | None = None) -> int:
        value = await self.redis.get(day_key(tenant_id, at or datetime.now(UTC)))
        return int(value or 0)

    async def tenants(self) -> list[str]:
        members = await self.redis.smembers(TENANTS_KEY)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def since(
        self, tenant_ids: Iterable[str], since: datetime, now: datetime | None = None
    ) -> list[TenantUsage]:
        """Usage from the hour bucket holding ``since`` up to now, per tenant and model."""
        now = now or datetime.now(UTC)
        start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        hours: list[datetime] = []
        while start <= now and len(hours) < RETENTION_S // 3600:
            hours.append(start)
            start += timedelta(hours=1)
        out: list[TenantUsage] = []
        for tenant_id in tenant_ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for hour in hours:
                    pipe.hgetall(hour_key(tenant_id, hour))
                buckets = await pipe.execute()
            usage = TenantUsage(tenant_id)
            for bucket in buckets:
                for raw_field, raw_value in bucket.items():
                    name = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
                    model, _, counter = name.rpartition("|")
                    entry = usage.models.setdefault(model, ModelUsage())
                    if counter in COUNTERS:
                        setattr(entry, counter, getattr(entry, counter) + int(raw_value))
            out.append(usage)
        return out

    async def forget(self, tenant_id: str) -> None:
        """Drop the tenant from the index (a deleted tenant); its buckets expire on their own."""
        await self.redis.srem(TENANTS_KEY, tenant_id)
