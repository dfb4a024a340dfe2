"""Long polling against a real Redis, a SQLite registry and the fake Bot API over HTTP:
updates land in the buffer, the offset moves only after they did, a webhook in the way is
deleted, a refused token marks the tenant failed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.model import Tenant, TenantStatus
from daemon.msgpath.buffer import Buffer
from daemon.msgpath.poller import PollerManager, bot_id
from daemon.redis_keys import buffer_key, lock_key, poll_lease_name, poll_offset_key
from daemon.telegram import BotApi
from otm.devtools.fake_telegram import FakeTelegram, FaultMode, make_text_update
from tests.support.polling import eventually

BOT = "7001:polling-bot"


@dataclass
class World:
    registry: SqliteRegistry
    redis: aioredis.Redis
    buffer: Buffer
    telegram: FakeTelegram
    notified: list[str] = field(default_factory=list)
    managers: list[PollerManager] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    def manager(self) -> PollerManager:
        assert self.session is not None
        pollers = PollerManager(
            registry=self.registry,
            buffer=self.buffer,
            coordination=Coordination(self.redis),
            bot_api=BotApi(self.session, self.telegram.base_url),
            notify=self.notified.append,
            metrics=Metrics(),
            default_ingress="webhook",
            poll_timeout_s=1,
        )
        self.managers.append(pollers)
        return pollers

    async def buffered(self, tenant_id: str) -> list[int]:
        return [u.update_id for u in await self.buffer.head(tenant_id, 100)]

    async def offset(self, tenant_id: str) -> int | None:
        stored = await self.redis.hget(poll_offset_key(tenant_id), bot_id(BOT))
        return int(stored) if stored is not None else None


@pytest.fixture
async def world(
    redis_client: aioredis.Redis, telegram: FakeTelegram, tmp_path: Path
) -> AsyncIterator[World]:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    world = World(registry, redis_client, Buffer(redis_client), telegram)
    async with aiohttp.ClientSession() as session:
        world.session = session
        try:
            yield world
        finally:
            for manager in world.managers:
                await manager.close()
            await registry.close()


async def test_polled_updates_are_buffered_then_confirmed(world: World) -> None:
    await world.registry.create(Tenant(tenant_id="pt", bot_token=BOT, ingress="polling"))
    await world.registry.create(Tenant(tenant_id="wh", bot_token="7002:webhook-bot"))
    for n in (11, 12, 13):
        world.telegram.inject_update(BOT, make_text_update(n, 5, f"m{n}"))
    pollers = world.manager()
    await pollers.sync()
    assert pollers.polling == ["pt"]  # the webhook tenant is not polled

    await eventually(lambda: world.buffered("pt"), 10, "updates buffered")
    await eventually(lambda: not world.telegram.pending_updates(BOT), 10, "updates confirmed")
    assert await world.buffered("pt") == [11, 12, 13]
    assert await world.offset("pt") == 14
    assert set(world.notified) == {"pt"}
    # The next getUpdates carries offset = last + 1: that is what confirmed them.
    offsets = [c.params.get("offset") for c in world.telegram.calls(BOT, "getUpdates")]
    assert offsets[0] is None
    assert 14 in offsets
    assert not world.telegram.calls("7002:webhook-bot", "getUpdates")


async def test_the_offset_moves_only_after_the_updates_are_in_the_buffer(world: World) -> None:
    """Appends fail (the buffer's key holds the wrong type): the offset must stay put and
    Telegram must keep the update; once appends work again it is buffered exactly once.
    Committing before appending fails here: the stored offset would already be past it."""
    await world.registry.create(Tenant(tenant_id="pt", bot_token=BOT, ingress="polling"))
    await world.redis.set(buffer_key("pt"), "not a stream")
    world.telegram.inject_update(BOT, make_text_update(21, 5, "keep me"))
    pollers = world.manager()
    await pollers.sync()
    await world.telegram.wait_for_calls(BOT, "getUpdates", count=3, timeout=20)
    assert await world.offset("pt") is None
    assert [u["update_id"] for u in world.telegram.pending_updates(BOT)] == [21]

    await world.redis.delete(buffer_key("pt"))
    await eventually(lambda: world.buffered("pt"), 40, "update buffered after the fix")
    await eventually(lambda: not world.telegram.pending_updates(BOT), 10, "update confirmed")
    assert await world.buffered("pt") == [21]
    assert await world.offset("pt") == 22


async def test_two_managers_poll_a_tenant_once(world: World) -> None:
    await world.registry.create(Tenant(tenant_id="pt", bot_token=BOT, ingress="polling"))
    first, second = world.manager(), world.manager()
    await first.sync()
    await world.telegram.wait_for_calls(BOT, "getUpdates")
    await second.sync()
    assert first.polling == second.polling == ["pt"]  # both campaign, one holds the lease
    holder = await world.redis.get(lock_key(poll_lease_name("pt")))
    assert holder is not None
    for n in range(1, 6):
        world.telegram.inject_update(BOT, make_text_update(n, 5, f"m{n}"))
    await eventually(lambda: not world.telegram.pending_updates(BOT), 10, "updates confirmed")
    assert world.telegram.terminated_polls(BOT) == 0  # never two getUpdates at once
    holding = [m.metrics.polling_tenants._value.get() for m in (first, second)]
    assert holding == [1, 0]
    # The holder stops (as a replica shutting down): the other one takes over.
    await first.close()
    for n in range(6, 9):
        world.telegram.inject_update(BOT, make_text_update(n, 5, f"m{n}"))
    await eventually(lambda: not world.telegram.pending_updates(BOT), 20, "taken over")
    assert await world.buffered("pt") == list(range(1, 9))
    assert first.metrics.polling_tenants._value.get() == 0
    assert second.metrics.polling_tenants._value.get() == 1


async def test_a_webhook_in_the_way_is_deleted(world: World) -> None:
    await world.registry.create(Tenant(tenant_id="pt", bot_token=BOT, ingress="polling"))
    assert world.session is not None
    api = BotApi(world.session, world.telegram.base_url)
    await api.set_webhook(BOT, url="http://127.0.0.1:1/tg/pt", secret="s")
    world.telegram.inject_update(BOT, make_text_update(31, 5, "after the webhook"))
    pollers = world.manager()
    await pollers.sync()
    await eventually(lambda: world.buffered("pt"), 10, "update buffered")
    assert BOT not in world.telegram.webhooks
    assert len(world.telegram.calls(BOT, "deleteWebhook")) == 1
    # Set while a long poll waits (as an agent does at its start): that poll ends with 409
    # "terminated by setWebhook request", and the webhook goes again.
    polls = len(world.telegram.calls(BOT, "getUpdates"))
    await world.telegram.wait_for_calls(BOT, "getUpdates", count=polls + 1)
    await api.set_webhook(BOT, url="http://127.0.0.1:1/tg/pt", secret="s")
    await eventually(lambda: BOT not in world.telegram.webhooks, 10, "webhook deleted again")
    world.telegram.inject_update(BOT, make_text_update(32, 5, "after the second webhook"))
    await eventually(lambda: not world.telegram.pending_updates(BOT), 10, "update confirmed")
    assert await world.buffered("pt") == [31, 32]
    assert len(world.telegram.calls(BOT, "deleteWebhook")) == 2


async def test_a_refused_token_marks_the_tenant_failed_without_retrying(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await world.registry.create(Tenant(tenant_id="pt", bot_token=BOT, ingress="polling"))
    world.telegram.set_fault(FaultMode.UNAUTHORIZED, token=BOT, method="getUpdates")
    pollers = world.manager()
    await pollers.sync()

    async def failed() -> bool:
        return (await world.registry.get("pt")).status == TenantStatus.FAILED

    await eventually(failed, 10, "tenant failed")
    tenant = await world.registry.get("pt")
    assert "401" in tenant.status_reason
    assert "otm tenant update pt" in tenant.status_reason
    assert BOT not in tenant.status_reason
    assert "401" in caplog.text
    assert BOT not in caplog.text  # the token is never logged
    await eventually(lambda: all(t.done() for _, t in pollers._pollers.values()), 10)
    assert len(world.telegram.calls(BOT, "getUpdates")) == 1
    # The next look at the registry leaves a failed tenant unpolled.
    await pollers.sync()
    assert pollers.polling == []


async def test_a_replica_that_lost_its_lease_cannot_move_the_offset(world: World) -> None:
    pollers = world.manager()
    coordination = Coordination(world.redis)
    mine = await coordination.acquire_lock(poll_lease_name("pt"), 5)
    assert mine is not None
    args = [poll_offset_key("pt"), lock_key(poll_lease_name("pt"))]
    assert await pollers._commit(keys=args, args=["stale-token", bot_id(BOT), 50]) == 0
    assert await world.offset("pt") is None
    assert await pollers._commit(keys=args, args=[mine, bot_id(BOT), 50]) == 1
    assert await pollers._commit(keys=args, args=[mine, bot_id(BOT), 40]) == 1
    assert await world.offset("pt") == 50  # never moves back


async def test_pollers_start_and_stop_on_tenant_events(world: World) -> None:
    pollers = world.manager()
    await pollers.sync()
    assert pollers.polling == []
    await world.registry.create(Tenant(tenant_id="pt", bot_token=BOT))
    await world.registry.update("pt", ingress="polling")
    pollers.on_event("pt", {"tenant_id": "pt", "kind": "updated"})
    await eventually(lambda: pollers.polling == ["pt"], 5, "poller started")
    await world.registry.update("pt", ingress="webhook")
    pollers.on_event("pt", {"tenant_id": "pt", "kind": "updated"})
    await eventually(lambda: pollers.polling == [], 5, "poller stopped")
    await asyncio.sleep(0)


async def test_the_sweep_pages_through_the_registry_and_stops_pollers_of_deleted_tenants(
    world: World,
) -> None:
    """The sweep reads the registry a page at a time (pages of 2 here): a polling tenant on
    any page gets its poller, and one whose record vanished without an event (missed
    across a Redis reconnect) loses it at the next sweep."""
    world.registry.page_size = 2
    for n in range(5):  # webhook tenants on the first pages, the polling ones after
        await world.registry.create(Tenant(tenant_id=f"a{n}", bot_token=f"70{n}:webhook"))
    await world.registry.create(Tenant(tenant_id="pa", bot_token=BOT, ingress="polling"))
    await world.registry.create(Tenant(tenant_id="pb", bot_token="7010:b", ingress="polling"))
    pollers = world.manager()
    await pollers.sync()
    assert pollers.polling == ["pa", "pb"]

    await world.registry.delete("pa")  # no event reaches this manager
    await pollers.sync()
    assert pollers.polling == ["pb"]
