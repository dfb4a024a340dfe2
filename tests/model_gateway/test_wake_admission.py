"""Wake admission on a real redis-server: the cap holds across replicas, order is FIFO,
a dead waiter or holder frees its place."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from daemon.msgpath import wake_admission
from daemon.msgpath.wake_admission import WakeAdmission
from tests.support.redis_cluster import BACKENDS

# The Redis tests also run on a Redis Cluster (tests/conftest.py parametrizes redis_backend).
REDIS_BACKENDS = BACKENDS


@pytest.fixture
def client(redis_client: aioredis.Redis) -> aioredis.Redis:
    return redis_client  # the root conftest's client of the test's Redis


async def test_cap_across_replicas_in_fifo_order(client: aioredis.Redis) -> None:
    cap = {"value": 3}

    async def get_cap() -> int:
        return cap["value"]

    replicas = [WakeAdmission(client, get_cap), WakeAdmission(client, get_cap)]
    running: set[str] = set()
    peak = 0
    admitted: list[str] = []
    overtaken: list[str] = []
    gate, first_three = asyncio.Event(), asyncio.Event()

    async def wake(n: int) -> None:
        nonlocal peak
        tenant = f"t{n:02d}"
        async with replicas[n % 2].slot(tenant):
            # FIFO: a tenant gets in only while fewer than `cap` tenants ahead of it wait
            # (those ahead are admitted in the same round, in whatever order they re-check).
            ahead_waiting = [f"t{j:02d}" for j in range(n) if f"t{j:02d}" not in admitted]
            if len(ahead_waiting) >= 3:
                overtaken.append(tenant)
            admitted.append(tenant)
            if len(admitted) >= 3:
                first_three.set()
            running.add(tenant)
            peak = max(peak, len(running))
            await gate.wait()
            await asyncio.sleep(0.01)
            running.discard(tenant)

    tasks = []
    for n in range(12):
        tasks.append(asyncio.create_task(wake(n)))
        await asyncio.sleep(0.01)  # arrival order = tenant order
    async with asyncio.timeout(5):
        await first_three.wait()
    snapshot = await replicas[0].snapshot()
    assert sorted(snapshot.in_progress) == ["t00", "t01", "t02"]
    assert snapshot.queued == [f"t{n:02d}" for n in range(3, 12)]
    gate.set()
    async with asyncio.timeout(30):
        await asyncio.gather(*tasks)
    assert peak <= 3
    assert sorted(admitted) == [f"t{n:02d}" for n in range(12)]
    assert overtaken == []
    final = await replicas[1].snapshot()
    assert final.in_progress == [] and final.queued == []


async def test_live_cap_change_admits_more(client: aioredis.Redis) -> None:
    cap = {"value": 1}

    async def get_cap() -> int:
        return cap["value"]

    admission = WakeAdmission(client, get_cap)
    assert await admission.try_acquire("a") is None
    assert await admission.try_acquire("b") == 0
    cap["value"] = 2
    assert await admission.try_acquire("b") is None
    await admission.release("a")
    await admission.release("b")


async def test_dead_holder_and_dead_waiter_free_their_place(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def one() -> int:
        return 1

    admission = WakeAdmission(client, one)
    assert await admission.try_acquire("crashed") is None  # held, never released
    assert await admission.try_acquire("gone") == 0  # queued, never comes back
    assert await admission.try_acquire("next") == 1
    # Leases are 30 s; shorten them by rewriting scores as a crashed replica would leave them.
    await client.zadd(wake_admission.HOLDERS, {"crashed": 0})
    await client.zadd(wake_admission.ALIVE, {"gone": 0})
    assert await admission.try_acquire("next") is None
    snapshot = await admission.snapshot()
    assert snapshot.in_progress == ["next"] and snapshot.queued == []


async def test_a_held_slot_is_renewed_past_its_lease(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wake longer than the lease keeps its slot (the keeper renews it every third)."""
    monkeypatch.setattr(wake_admission, "LEASE_S", 0.6)

    async def one() -> int:
        return 1

    admission = WakeAdmission(client, one)
    async with admission.slot("long"):
        await asyncio.sleep(3 * wake_admission.LEASE_S)
        assert await admission.try_acquire("other") == 0  # still held: other waits
    assert await admission.try_acquire("other") is None
    await admission.release("other")
