"""Finding 6: a flood of bogus tenant ids neither grows the router's cache without
bound nor turns into one registry read each, and a real tenant is still served."""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest

from daemon.model import Tenant, TenantStatus
from daemon.msgpath.tenant_cache import LookupThrottled, TenantCache
from tests.support.counting_registry import CountingRegistry

BOGUS = 50_000


class FrozenClock:
    """The flood arrives within one instant: no time for the read budget to refill."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_bogus_id_flood_is_bounded_and_a_real_tenant_is_served(
    counting_registry: CountingRegistry,
) -> None:
    registry = counting_registry
    clock = FrozenClock()
    await registry.create(Tenant(tenant_id="alpha", bot_token="1:a"))
    cache = TenantCache(
        registry, max_entries=100, max_negative=1000, unknown_reads_burst=200, clock=clock
    )
    assert (await cache.get("alpha")) is not None  # a real tenant, seen once

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    throttled = 0
    for n in range(BOGUS):
        try:
            assert await cache.get(f"bogus-{n}") is None
        except LookupThrottled:
            throttled += 1
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    assert len(cache) <= 100 + 1000
    assert registry.reads <= 1 + 200  # alpha + the burst budget, not one per bogus id
    assert throttled >= BOGUS - 200
    assert grown < 2_000_000, grown  # bounded (the finding: 41.5 MB for 200,000 ids)

    # The real tenant's entry expires; re-reading it is not throttled.
    clock.now += 10
    reads = registry.reads
    for n in range(BOGUS, BOGUS + 500):  # the flood goes on, exhausting the budget
        with contextlib.suppress(LookupThrottled):
            await cache.get(f"bogus-{n}")
    assert registry.reads - reads <= 200
    with pytest.raises(LookupThrottled):
        await cache.get("bogus-one-more")
    info = await cache.get("alpha")
    assert info is not None and info.tenant_id == "alpha"
    # The budget refills with time: unknown ids are looked up (and 404) again.
    clock.now += 60
    assert await cache.get("bogus-new") is None


async def test_negative_entries_evict_each_other_not_real_tenants(
    counting_registry: CountingRegistry,
) -> None:
    registry = counting_registry
    await registry.create(Tenant(tenant_id="alpha", bot_token="1:a"))
    # No read budget limit here: only the LRU bounds are under test.
    cache = TenantCache(
        registry, ttl_s=3600, negative_ttl_s=3600, max_negative=100, unknown_reads_burst=10**9
    )
    await cache.get("alpha")
    for n in range(2000):
        await cache.get(f"bogus-{n}")
    assert len(cache) == 1 + 100
    reads = registry.reads
    assert await cache.get("alpha") is not None
    assert registry.reads == reads  # still cached: bogus ids never evicted it


async def test_tenants_running_at_start_up_skip_the_unknown_id_budget(
    counting_registry: CountingRegistry,
) -> None:
    """After a daemon restart, busy tenants' first webhooks meet an empty cache: those
    running (or being woken) are learned from one scan, not from the budget for bogus ids."""
    registry = counting_registry
    busy = [f"busy-{n}" for n in range(30)]
    for tid in [*busy, "waking", "asleep"]:
        await registry.create(Tenant(tenant_id=tid, bot_token="1:a"))
    for tid in busy:
        await registry.update(tid, status=TenantStatus.RUNNING)
    await registry.update("waking", status=TenantStatus.PROVISIONING)
    cache = TenantCache(registry, unknown_reads_burst=5, clock=FrozenClock())

    assert await cache.learn_running() == len(busy) + 1
    for n in range(5):  # a flood takes the whole budget first
        assert await cache.get(f"bogus-{n}") is None
    with pytest.raises(LookupThrottled):
        await cache.get("bogus-more")
    for tid in [*busy, "waking"]:
        info = await cache.get(tid)
        assert info is not None and info.tenant_id == tid
    # A sleeping tenant was not learned: it still needs the budget (and waits for it).
    with pytest.raises(LookupThrottled):
        await cache.get("asleep")
