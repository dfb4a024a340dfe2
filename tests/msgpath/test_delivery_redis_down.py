"""A delivery worker that meets a dead Redis before it holds its lease retries (bounded
back-off) instead of failing its task: once the same redis-server (same port and AOF) is
back, the buffered update is delivered without waiting for a sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.embedded_redis import EmbeddedRedis
from tests.msgpath.test_delivery_replicas import Agent, Replica, update, world  # noqa: F401


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "own-redis", durable=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(own_redis: EmbeddedRedis) -> str:
    return own_redis.url


def delivery_task_failures(replica: Replica) -> float:
    counter = replica.delivery.metrics.background_task_failures.labels(task="delivery")
    return float(counter._value.get())


async def test_worker_started_while_redis_is_down_retries_until_it_is_back(
    world: tuple[Agent, list[Replica]],  # noqa: F811 - the imported fixture
    own_redis: EmbeddedRedis,
) -> None:
    agent, replicas = world
    replica = replicas[0]
    assert (await replica.buffer.append("t", 1, update(1))).added
    await asyncio.to_thread(own_redis.stop)
    replica.delivery.notify("t")  # the worker's first Redis call fails
    await asyncio.sleep(0.3)
    assert agent.received == []
    await asyncio.to_thread(own_redis.start)
    await agent.wait_for(1, timeout=20)
    assert agent.received == [1]
    assert delivery_task_failures(replica) == 0
