"""Redis-lease leader election with two electors (two clients = two replicas)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.lifecycle.leader import REDIS_LEADER_KEY, LeaderElector, LeaderTasks, RedisLease
from daemon.metrics import Metrics
from tests.support.polling import eventually
from tests.support.servers import running_redis

LEASE_S = 1.5


class Replica:
    """One elector with its own Redis client and a running campaign task."""

    def __init__(self, url: str, name: str) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.metrics = Metrics()
        self.elector = LeaderElector(
            RedisLease(self.client, identity=name, lease_s=LEASE_S),
            lease_s=LEASE_S,
            metrics=self.metrics,
        )
        self.changes: list[bool] = []
        self.elector.on_change(self.changes.append)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(), name=f"elect:{self.elector.identity}")

    async def crash(self) -> None:
        """Stop campaigning and renewing without releasing the lease (like SIGKILL)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def close(self) -> None:
        await self.crash()
        await self.client.aclose()

    @property
    def gauge(self) -> float:
        value = self.metrics.registry.get_sample_value("otm_is_leader")
        assert value is not None
        return value


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[list[Replica]]:
    pair = [Replica(redis_url, "replica-a"), Replica(redis_url, "replica-b")]
    try:
        yield pair
    finally:
        for replica in pair:
            await replica.close()


def leaders(replicas: list[Replica]) -> list[Replica]:
    return [r for r in replicas if r.elector.is_leader]


async def test_exactly_one_replica_leads(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.start()
    await eventually(lambda: len(leaders(replicas)) == 1, timeout=LEASE_S * 3, what="a leader")
    # Several renewal periods later there is still exactly one, and it is the same one.
    first = leaders(replicas)[0]
    await asyncio.sleep(LEASE_S)
    assert leaders(replicas) == [first]
    follower = next(r for r in replicas if r is not first)
    assert first.gauge == 1 and follower.gauge == 0
    assert first.changes == [True] and follower.changes == []
    assert await first.elector.backend.holder() == first.elector.identity
    assert await follower.elector.backend.holder() == first.elector.identity


async def elected(replicas: list[Replica]) -> tuple[Replica, Replica]:
    """Start both replicas; (the leader, the follower) once one leads."""
    for replica in replicas:
        replica.start()
    await eventually(lambda: len(leaders(replicas)) == 1, timeout=LEASE_S * 3, what="a leader")
    leader = leaders(replicas)[0]
    return leader, next(r for r in replicas if r is not leader)


async def test_follower_takes_over_when_leader_stops_renewing(replicas: list[Replica]) -> None:
    old, new = await elected(replicas)
    await old.crash()  # no release: the follower must wait the lease out
    await eventually(lambda: new.elector.is_leader, timeout=LEASE_S * 3, what="takeover")
    assert await new.elector.backend.holder() == new.elector.identity
    assert new.elector.terms == 1


async def test_graceful_release_hands_over_at_once(replicas: list[Replica]) -> None:
    old, new = await elected(replicas)
    await old.crash()
    await old.elector.release()
    assert await old.client.get(REDIS_LEADER_KEY) is None
    await eventually(lambda: new.elector.is_leader, timeout=LEASE_S * 3, what="takeover")


async def test_leader_steps_down_when_lease_is_taken_and_rejoins(
    replicas: list[Replica], redis_client: aioredis.Redis
) -> None:
    a, b = replicas
    a.start()
    await eventually(lambda: a.elector.is_leader, timeout=LEASE_S * 3, what="a leads")
    # Someone else owns the key now (e.g. our lease expired during a stall and
    # another replica won): the fenced renewal fails and `a` must step down.
    await redis_client.set(REDIS_LEADER_KEY, "intruder/x", px=int(LEASE_S * 1000))
    await eventually(lambda: not a.elector.is_leader, timeout=LEASE_S * 3, what="step down")
    assert a.changes[:2] == [True, False]
    assert a.gauge == 0
    # The intruder never renews; `a` keeps campaigning and wins again.
    await eventually(lambda: a.elector.is_leader, timeout=LEASE_S * 3, what="re-election")
    assert a.elector.terms == 2
    assert b.task is None


async def test_leader_tasks_run_only_while_leading(redis_url: str, replicas: list[Replica]) -> None:
    a, b = replicas
    events: list[tuple[str, str]] = []

    def make_loop(name: str) -> LeaderTasks:
        async def loop() -> None:
            events.append((name, "start"))
            try:
                await asyncio.Event().wait()
            finally:
                events.append((name, "stop"))

        tasks = LeaderTasks(replicas[0 if name == "a" else 1].elector)
        tasks.add("loop", loop)
        return tasks

    runners = [asyncio.create_task(make_loop(n).run()) for n in ("a", "b")]
    try:
        a.start()
        await eventually(lambda: ("a", "start") in events, timeout=LEASE_S * 3, what="a's loop")
        b.start()
        await asyncio.sleep(LEASE_S)
        assert ("b", "start") not in events
        await a.crash()  # a's elector stops: it steps down locally at once
        await eventually(lambda: ("a", "stop") in events, timeout=1.0, what="a's loop stopped")
        await eventually(lambda: ("b", "start") in events, timeout=LEASE_S * 3, what="b's loop")
        # Never both at once: a stopped before b started.
        assert events.index(("a", "stop")) < events.index(("b", "start"))
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)


async def test_crashed_leader_task_is_restarted(replicas: list[Replica]) -> None:
    a = replicas[0]
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    failures: list[str] = []
    tasks = LeaderTasks(a.elector, on_failure=failures.append, restart_backoff_s=0.05)
    tasks.add("flaky", flaky)
    runner = asyncio.create_task(tasks.run())
    try:
        a.start()
        await eventually(lambda: len(runs) == 3, timeout=LEASE_S * 3, what="restarts")
        assert failures == ["flaky", "flaky"]
        assert tasks.running == ["flaky"]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_leadership_recovers_after_redis_restart(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", durable=False) as server:
        pair = [Replica(server.url, "replica-a"), Replica(server.url, "replica-b")]
        try:
            for replica in pair:
                replica.start()
            await eventually(lambda: len(leaders(pair)) == 1, timeout=LEASE_S * 3, what="leader")
            await asyncio.to_thread(server.stop)
            # Renewals now fail: nobody may believe it leads once its lease could have expired.
            await eventually(lambda: not leaders(pair), timeout=LEASE_S * 2, what="step down")
            await asyncio.to_thread(server.start)  # same port, empty data
            await eventually(lambda: len(leaders(pair)) == 1, timeout=LEASE_S * 6, what="recovery")
            leader = leaders(pair)[0]
            assert await leader.elector.backend.holder() == leader.elector.identity
        finally:
            for replica in pair:
                await replica.close()
