"""The delivery hot path's shortcuts on a real Redis (standalone and cluster) with a real
HTTP agent: the replica-wide lease renewal, and the appended update handed to an idle
worker with the notify instead of read back from the buffer."""

from __future__ import annotations

import pytest

from daemon.model import Tenant, TenantStatus
from daemon.msgpath import delivery as delivery_module
from daemon.msgpath.buffer import Buffer, BufferedUpdate, lease_key
from daemon.msgpath.delivery_worker import Worker, entry_order
from daemon.msgpath.tenant_cache import LookupThrottled, TenantCache
from tests.msgpath.test_delivery_replicas import Agent, Replica, update, world
from tests.support.polling import eventually
from tests.support.redis_cluster import BACKENDS

REDIS_BACKENDS = BACKENDS
__all__ = ["world"]  # the fixture, shared with the replica tests


async def deliver_one(replica: Replica, agent: Agent, update_id: int, tenant: str = "t") -> None:
    result = await replica.buffer.append(tenant, update_id, update(update_id))
    replica.delivery.notify(tenant, length=result.length, appended=result.update)
    await eventually(lambda: update_id in agent.received, timeout=10)


def count_reads(buffer: Buffer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    head = buffer.head

    async def counted(tenant_id: str, count: int = 16) -> list[BufferedUpdate]:
        reads.append(tenant_id)
        return await head(tenant_id, count)

    monkeypatch.setattr(buffer, "head", counted)
    return reads


async def test_a_lost_lease_stops_exactly_its_worker_before_any_ack(
    world: tuple[Agent, list[Replica]],
) -> None:
    agent, (replica, _) = world
    delivery = replica.delivery
    running = await delivery.registry.get("t")
    await delivery.registry.create(
        Tenant(
            tenant_id="u",
            bot_token="2:y",
            webhook_secret=agent.secret,
            status=TenantStatus.RUNNING,
            endpoint=running.endpoint,
        )
    )
    await deliver_one(replica, agent, 1, "t")
    await deliver_one(replica, agent, 101, "u")
    kept = delivery.leases.held["u"].token
    # Another owner took t's lease (ours expired unseen, say): the next renewal round trip
    # finds it and stops t's worker, and only it.
    await replica.buffer.redis.set(lease_key("t"), "thief", px=60_000)
    await eventually(lambda: "t" not in delivery._workers, timeout=10)
    assert "u" in delivery._workers
    await replica.buffer.append("t", 2, update(2))
    delivery.notify("t")  # a new worker finds the lease taken
    await deliver_one(replica, agent, 102, "u")
    assert 2 not in agent.received
    assert await replica.buffer.length("t") == 1  # never acked
    assert await replica.buffer.redis.get(lease_key("t")) == b"thief"
    assert await replica.buffer.redis.get(lease_key("u")) == kept.encode()


async def test_an_update_handed_to_an_idle_worker_skips_the_buffer_read(
    world: tuple[Agent, list[Replica]], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, (replica, _) = world
    await deliver_one(replica, agent, 1)  # the worker has seen the buffer: it may be handed
    reads = count_reads(replica.buffer, monkeypatch)
    for n in range(2, 7):
        await deliver_one(replica, agent, n)
    assert reads == []
    assert agent.received == [1, 2, 3, 4, 5, 6]
    assert await replica.buffer.length("t") == 0
    assert await replica.buffer.pending_tenants() == []


async def test_a_late_handover_of_an_update_already_read_is_not_delivered_again(
    world: tuple[Agent, list[Replica]],
) -> None:
    agent, (replica, _) = world
    delivery = replica.delivery
    await deliver_one(replica, agent, 1)
    first = await replica.buffer.append("t", 2, update(2))
    second = await replica.buffer.append("t", 3, update(3))
    assert (first.length, second.length) == (1, 2)
    # The second append's notify comes first: the worker reads and delivers both.
    delivery.notify("t", length=second.length, appended=second.update)
    await eventually(lambda: 3 in agent.received, timeout=10)
    worker = delivery._workers["t"]
    await eventually(lambda: not worker.poke.is_set(), timeout=10)
    # Then the first one's, handing over update 2, delivered already.
    delivery.notify("t", length=first.length, appended=first.update)
    await eventually(lambda: worker.handed is None and not worker.poke.is_set(), timeout=10)
    await deliver_one(replica, agent, 4)
    assert agent.received == [1, 2, 3, 4]


def test_a_worker_that_has_seen_nothing_does_not_take_a_handed_update() -> None:
    handed = BufferedUpdate("5-0", 1, b"{}", 5)
    fresh = Worker(handed=handed)
    assert fresh.take_handed() is None
    seen = Worker(handed=handed, seen_upto=entry_order("4-7"))
    assert seen.take_handed() is handed
    assert seen.take_handed() is None  # taken once
    assert entry_order("10-0") > entry_order("9-99")


async def test_an_idle_worker_leaves_and_releases_its_lease_however_often_it_was_woken(
    world: tuple[Agent, list[Replica]], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, (replica, _) = world
    monkeypatch.setattr(delivery_module, "IDLE_S", 0.5)
    for n in range(1, 6):  # each wait re-starts the idle period; one timer serves them
        await deliver_one(replica, agent, n)
    await eventually(lambda: "t" not in replica.delivery._workers, timeout=10)
    await eventually(lambda: not replica.delivery.leases.held, timeout=10)

    async def released() -> bool:
        # The worker leaves the renewal first, then releases: the key goes a moment later.
        return await replica.buffer.redis.get(lease_key("t")) is None

    await eventually(released, timeout=10, what="lease released")
    assert agent.received == [1, 2, 3, 4, 5]


async def test_a_tenant_announced_as_woken_is_read_without_the_budget_for_unknown_ids(
    world: tuple[Agent, list[Replica]],
) -> None:
    _, (replica, other) = world
    spent = TenantCache(replica.delivery.registry, unknown_reads_burst=0, unknown_reads_per_s=0)
    replica.delivery.tenants = spent
    with pytest.raises(LookupThrottled):
        await spent.get("t")  # never seen here: the (spent) budget applies
    await other.delivery.coordination.publish_event("t", "running", endpoint="http://x")
    await eventually(lambda: "t" in spent._known, timeout=10)
    info = await spent.get("t")
    assert info is not None and info.tenant_id == "t"
