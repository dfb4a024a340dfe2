"""Two delivery managers ("replicas") on one real Redis and one SQLite registry,
delivering to a real HTTP agent endpoint: one worker per tenant, in order, once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from daemon.adapters.local.runtime import LocalRuntime
from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.adapters.state_dir import DirStateStore
from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.model import Tenant, TenantStatus
from daemon.msgpath.buffer import Buffer, lease_key
from daemon.msgpath.delivery import DeliveryManager
from daemon.msgpath.message_path import build_message_path
from daemon.msgpath.pubsub import TenantSignals
from daemon.msgpath.tenant_cache import TenantCache
from daemon.settings import load_settings
from daemon.tasks import TaskGroup
from daemon.telegram import SECRET_HEADER, BotApi
from otm.devtools._serving import ServedApp
from tests.support.redis_cluster import BACKENDS

# Two replicas on a standalone Redis and on a Redis Cluster (tests/conftest.py).
REDIS_BACKENDS = BACKENDS


@dataclass
class Agent:
    """A webhook that records what it gets and how many requests overlap."""

    secret: str
    delay_s: float = 0.001
    received: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != self.secret:
            return web.Response(status=401)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)  # let another worker overlap, if one existed
            self.received.append(json.loads(await request.read())["update_id"])
        finally:
            self.in_flight -= 1
        self.changed.set()
        return web.Response(status=200)

    async def wait_for(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Replica:
    delivery: DeliveryManager
    buffer: Buffer
    listener: asyncio.Task[None]


@pytest.fixture
async def world(
    new_redis_client: Callable[[], aioredis.Redis], tmp_path: Path
) -> AsyncIterator[tuple[Agent, list[Replica]]]:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    tenant = await registry.create(Tenant(tenant_id="t", bot_token="1:x"))
    agent = Agent(secret=tenant.webhook_secret)
    app = web.Application()
    app.router.add_post("/telegram-webhook", agent.handle)
    served = ServedApp(app)
    await served.start()
    await registry.update(
        "t", status=TenantStatus.RUNNING, endpoint=f"{served.base_url}/telegram-webhook"
    )
    settings = load_settings(flags={"data_dir": str(tmp_path)}, env={})
    session = aiohttp.ClientSession()
    clients: list[aioredis.Redis] = []
    replicas: list[Replica] = []
    tasks = TaskGroup()
    # Never started here: the agent "runs" already; the runtime is only asked on failures.
    runtime = LocalRuntime(
        settings=settings,
        state_store=DirStateStore(settings.state_dir),
        session=session,
        webhook_url_for=lambda t: "http://127.0.0.1:9/tg/" + t,
    )
    for _ in range(2):
        client = new_redis_client()
        clients.append(client)
        signals = TenantSignals()
        path = build_message_path(
            settings=settings,
            redis=client,
            registry=registry,
            runtime=runtime,
            coordination=Coordination(client),
            signals=signals,
            tenants=TenantCache(registry),
            bot_api=BotApi(session, "http://127.0.0.1:9"),
            session=session,
            metrics=Metrics(),
            tasks=tasks,
        )
        listener = asyncio.create_task(signals.listen(client))
        async with asyncio.timeout(5):
            await signals.connected.wait()
        replicas.append(Replica(path.delivery, path.buffer, listener))
    try:
        yield agent, replicas
    finally:
        for replica in replicas:
            await replica.delivery.close()
            assert not await cancel_and_wait([replica.listener], timeout=5)
        await tasks.close()
        for client in clients:
            await client.aclose()
        await runtime.close()
        await session.close()
        await served.stop()
        await registry.close()


def update(update_id: int) -> bytes:
    return json.dumps(
        {"update_id": update_id, "message": {"chat": {"id": 1}, "text": "x"}}
    ).encode()


async def test_two_replicas_deliver_each_update_once_in_order(
    world: tuple[Agent, list[Replica]],
) -> None:
    agent, replicas = world
    for n in range(60):
        # Telegram's requests land on either replica's router, retries included.
        replica = replicas[n % 2]
        assert (await replica.buffer.append("t", n, update(n))).added
        assert not (await replicas[(n + 1) % 2].buffer.append("t", n, update(n))).added
        replica.delivery.notify("t")
        if n % 7 == 0:
            await asyncio.sleep(0.01)
    await agent.wait_for(60, timeout=20)
    await asyncio.sleep(0.2)  # nothing more may arrive
    assert agent.received == list(range(60))
    assert agent.max_in_flight == 1
    assert await replicas[0].buffer.length("t") == 0
    assert await replicas[0].buffer.pending_tenants() == []


async def test_a_dead_holders_lease_expires_and_delivery_resumes(
    world: tuple[Agent, list[Replica]],
) -> None:
    agent, replicas = world
    # A replica died holding the lease (never renewed, never released).
    await replicas[0].buffer.redis.set(lease_key("t"), "dead-replica", px=600)
    await replicas[1].buffer.append("t", 1, update(1))
    replicas[1].delivery.notify("t")
    await asyncio.sleep(0.3)
    assert agent.received == []  # fenced out while the lease lives
    await agent.wait_for(1, timeout=5)
    assert agent.received == [1]


async def test_restart_finds_buffered_work_through_the_pending_index(
    world: tuple[Agent, list[Replica]],
) -> None:
    agent, replicas = world
    for n in range(5):
        await replicas[0].buffer.append("t", n, update(n))  # nobody notified: a crash
    assert await replicas[1].delivery.sweep() == 1
    await agent.wait_for(5, timeout=10)
    assert agent.received == list(range(5))


async def test_updates_taken_by_the_other_replica_reach_the_holder_by_signals_alone(
    world: tuple[Agent, list[Replica]], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, (holder, other) = world
    await holder.buffer.append("t", 0, update(0))
    holder.delivery.notify("t")
    await agent.wait_for(1, timeout=5)  # the holder's worker now keeps the lease
    attempts = 0
    acquire = other.delivery.coordination.acquire_lock

    async def counted(name: str, ttl_s: float) -> str | None:
        nonlocal attempts
        attempts += 1
        return await acquire(name, ttl_s)

    monkeypatch.setattr(other.delivery.coordination, "acquire_lock", counted)
    for n in range(1, 31):
        assert (await other.buffer.append("t", n, update(n))).added
        other.delivery.notify("t")
        await asyncio.sleep(0.005)
    await agent.wait_for(31, timeout=10)
    assert agent.received == list(range(31))
    # One look at the lease; from then on (while it lives) only work signals, coalesced
    # while one is on its way.
    assert attempts == 1
    assert 1 <= other.delivery.work_signals_sent <= 30


async def test_an_update_appended_behind_another_needs_no_signal(
    world: tuple[Agent, list[Replica]],
) -> None:
    agent, (holder, other) = world
    await holder.buffer.append("t", 0, update(0))
    holder.delivery.notify("t")
    await agent.wait_for(1, timeout=5)  # the holder's worker keeps the lease from here on
    result = await other.buffer.append("t", 1, update(1))
    other.delivery.notify("t", length=result.length)
    async with asyncio.timeout(5):
        while "t" not in other.delivery._held_elsewhere:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await agent.wait_for(2, timeout=5)
    agent.delay_s = 0.3  # the holder is busy with update 2 when update 3 arrives
    result = await other.buffer.append("t", 2, update(2))
    assert result.length == 1
    other.delivery.notify("t", length=result.length)
    await asyncio.sleep(0.1)
    sent = other.delivery.work_signals_sent
    result = await other.buffer.append("t", 3, update(3))
    assert result.length == 2
    other.delivery.notify("t", length=result.length)
    # No signal for it: the holder's ack of update 2 counts it and the holder reads on.
    await agent.wait_for(4, timeout=5)
    assert agent.received == [0, 1, 2, 3]
    assert other.delivery.work_signals_sent == sent
