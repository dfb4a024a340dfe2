"""Pure logic of the message path: backoff, answer classification, tenant cache."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from daemon.adapters.local.logs import line_time, stamp
from daemon.model import Tenant, TenantStatus
from daemon.msgpath.delivery import BACKOFF_CAP_S, Outcome, backoff_delay, classify
from daemon.msgpath.tenant_cache import TenantCache
from tests.support.counting_registry import CountingRegistry
from tests.support.polling import eventually


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(8):
        nominal = min(BACKOFF_CAP_S, 0.1 * 2**attempt)
        assert 0.8 * nominal <= backoff_delay(attempt) <= 1.2 * nominal
    assert backoff_delay(10_000) <= BACKOFF_CAP_S * 1.2


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (400, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (401, Outcome.MISROUTED),
        (404, Outcome.MISROUTED),
        (408, Outcome.UNAVAILABLE),
        (429, Outcome.UNAVAILABLE),
        (500, Outcome.UNAVAILABLE),
        (503, Outcome.UNAVAILABLE),
    ],
)
def test_classify(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_log_stamp_round_trip() -> None:
    line = stamp("hello\n")
    assert line.endswith(" hello")
    assert line_time(line) is not None
    assert line_time("no stamp here") is None


async def test_tenant_cache_ttl_invalidation_and_single_flight(
    counting_registry: CountingRegistry,
) -> None:
    registry = counting_registry
    tenant = await registry.create(Tenant(tenant_id="t1"))
    cache = TenantCache(registry, ttl_s=60, negative_ttl_s=60)
    infos = await asyncio.gather(*(cache.get("t1") for _ in range(5)))
    assert registry.reads == 1  # concurrent misses share one read
    secret = tenant.webhook_secret.encode()
    assert all(i is not None and i.webhook_secret == secret for i in infos)
    assert "secret" not in repr(infos[0]) and tenant.webhook_secret not in repr(infos[0])
    await registry.update("t1", status=TenantStatus.SUSPENDED)
    cached = await cache.get("t1")
    assert cached is not None and cached.status == TenantStatus.IDLE  # within TTL
    cache.invalidate("t1")
    cached = await cache.get("t1")
    assert cached is not None and cached.status == TenantStatus.SUSPENDED
    # Unknown tenants are cached negatively; a "created" event invalidates.
    assert await cache.get("t2") is None
    reads = registry.reads
    assert await cache.get("t2") is None
    assert registry.reads == reads
    await registry.create(Tenant(tenant_id="t2"))
    cache.invalidate("t2")
    assert await cache.get("t2") is not None
    await registry.delete("t1")
    cache.clear()
    assert await cache.get("t1") is None


async def test_tenant_cache_drops_values_read_during_an_invalidation(
    counting_registry: CountingRegistry,
) -> None:
    registry = counting_registry
    await registry.create(Tenant(tenant_id="t1"))
    cache = TenantCache(registry, ttl_s=60)
    original = cache._load

    async def load_then_invalidate(tenant_id: str) -> Any:
        info = await original(tenant_id)
        cache.invalidate(tenant_id)  # an event arrived while the read was in flight
        return info

    cache._load = load_then_invalidate  # type: ignore[method-assign]
    assert await cache.get("t1") is not None
    assert len(cache) == 0  # possibly stale: used once, not kept


async def test_an_expired_entry_answers_while_one_background_read_refreshes_it(
    counting_registry: CountingRegistry,
) -> None:
    registry = counting_registry
    await registry.create(Tenant(tenant_id="t1"))
    now = [100.0]
    cache = TenantCache(registry, ttl_s=5, stale_s=5, clock=lambda: now[0])
    assert (await cache.get("t1")) is not None
    await registry.update("t1", status=TenantStatus.SUSPENDED)
    reads = registry.reads
    now[0] += 6  # past the TTL, within the stale window
    # Every lookup of this turn answers at once from the entry; one read refreshes it.
    infos = await asyncio.gather(*(cache.get("t1") for _ in range(5)))
    assert {i.status for i in infos if i is not None} == {TenantStatus.IDLE}
    await eventually(lambda: not cache._refreshing, what="the refresh done")
    assert registry.reads == reads + 1
    refreshed = await cache.get("t1")
    assert refreshed is not None and refreshed.status == TenantStatus.SUSPENDED
    # Past the stale window too: the lookup reads, and waits for it.
    await registry.update("t1", status=TenantStatus.IDLE)
    now[0] += 11
    current = await cache.get("t1")
    assert current is not None and current.status == TenantStatus.IDLE
    await cache.close()
