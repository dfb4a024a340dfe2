"""Coordination contract on a real redis-server. Two Coordination objects with
their own clients stand for two daemon replicas sharing one Redis."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from daemon.coordination import EVENT_LOG_MAXLEN, Coordination, LiveConfig, config_as_dict
from daemon.redis_keys import (
    CONFIG_CHANNEL,
    EVENTS_CHANNEL,
    endpoint_key,
    event_log_key,
    lock_key,
)
from tests.support.polling import eventually
from tests.support.redis_cluster import BACKENDS

Replicas = tuple[Coordination, Coordination]


# Each test that uses Redis runs on a standalone Redis and on a Redis Cluster (with the
# daemon's cluster client): tests/conftest.py parametrizes redis_backend with these.
REDIS_BACKENDS = BACKENDS


@pytest.fixture
async def replicas(new_redis_client: Callable[[], aioredis.Redis]) -> Replicas:
    return Coordination(new_redis_client()), Coordination(new_redis_client())


async def subscribers(coord: Coordination, channel: str) -> int:
    # Subscriptions are per node on a cluster: count them on every node.
    nodes = (
        {"target_nodes": RedisCluster.ALL_NODES} if isinstance(coord.redis, RedisCluster) else {}
    )
    [(_, count)] = await coord.redis.pubsub_numsub(channel, **nodes)
    return int(count)


async def no_subscribers(coord: Coordination, channel: str) -> bool:
    return await subscribers(coord, channel) == 0


# -- endpoint cache -------------------------------------------------------------


async def test_endpoint_is_shared_and_expires(replicas: Replicas) -> None:
    a, b = replicas
    assert await a.get_endpoint("acme") is None
    await a.set_endpoint("acme", "http://10.0.0.7:8787/telegram-webhook", ttl_s=0.3)
    assert await b.get_endpoint("acme") == "http://10.0.0.7:8787/telegram-webhook"
    assert 0 < await a.redis.pttl(endpoint_key("acme")) <= 300

    async def expired() -> bool:
        return await b.get_endpoint("acme") is None

    await eventually(expired)


async def test_conditional_endpoint_delete(replicas: Replicas) -> None:
    a, b = replicas
    await a.set_endpoint("acme", "http://new", ttl_s=60)
    # A replica whose delivery failed against an older endpoint must not drop the fresh one.
    assert await b.delete_endpoint("acme", only_if="http://old") is False
    assert await a.get_endpoint("acme") == "http://new"
    assert await b.delete_endpoint("acme", only_if="http://new") is True
    assert await a.get_endpoint("acme") is None
    assert await b.delete_endpoint("acme", only_if="http://new") is False

    await a.set_endpoint("acme", "http://again", ttl_s=60)
    assert await b.delete_endpoint("acme") is True
    assert await b.delete_endpoint("acme") is False


# -- wake lock ---------------------------------------------------------------------


async def test_wake_lock_is_fenced_by_owner_token(replicas: Replicas) -> None:
    a, b = replicas
    token = await a.acquire_lock("wake:acme", ttl_s=1)
    assert token is not None
    assert await b.acquire_lock("wake:acme", ttl_s=1) is None
    assert await b.lock_owner("wake:acme") == token

    assert await b.release_lock("wake:acme", "not-the-token") is False
    assert await b.extend_lock("wake:acme", "not-the-token", ttl_s=60) is False
    assert await a.lock_owner("wake:acme") == token

    assert await a.extend_lock("wake:acme", token, ttl_s=60) is True
    assert await a.redis.pttl(lock_key("wake:acme")) > 30_000

    assert await a.release_lock("wake:acme", token) is True
    assert await a.lock_owner("wake:acme") is None
    second = await b.acquire_lock("wake:acme", ttl_s=1)
    assert second is not None and second != token
    # Locks are per name.
    assert await a.acquire_lock("wake:other", ttl_s=1) is not None


async def test_expired_lock_passes_on_and_stale_owner_cannot_touch_it(replicas: Replicas) -> None:
    a, b = replicas
    stale = await a.acquire_lock("wake:acme", ttl_s=0.2)
    assert stale is not None
    taken: list[str] = []

    async def b_acquires() -> bool:
        token = await b.acquire_lock("wake:acme", ttl_s=60)
        if token is not None:
            taken.append(token)
        return token is not None

    await eventually(b_acquires)
    [fresh] = taken
    assert await a.release_lock("wake:acme", stale) is False
    assert await a.extend_lock("wake:acme", stale, ttl_s=60) is False
    assert await a.lock_owner("wake:acme") == fresh


# -- live config ------------------------------------------------------------------


async def test_config_defaults_and_persistence_across_replicas(replicas: Replicas) -> None:
    a, b = replicas
    assert await a.get_config() == LiveConfig()
    updated = await a.set_config({"warm_pool_target": 4, "default_idle_timeout_s": "900"})
    assert updated == LiveConfig(warm_pool_target=4, default_idle_timeout_s=900)
    assert await b.get_config() == updated
    # A partial update keeps the other values.
    assert (await b.set_config({"max_wake_attempts": 3})).warm_pool_target == 4
    assert config_as_dict(await a.get_config()) == {
        "warm_pool_target": 4,
        "default_idle_timeout_s": 900,
        "max_wake_attempts": 3,
        "max_concurrent_wakes": 10,
    }
    assert await a.set_config({}) == await a.get_config()


async def test_replica_defaults_apply_only_to_unset_keys(
    new_redis_client: Callable[[], aioredis.Redis],
) -> None:
    client = new_redis_client()
    try:
        coord = Coordination(client, config_defaults=LiveConfig(warm_pool_target=2))
        assert (await coord.get_config()).warm_pool_target == 2
        await coord.set_config({"warm_pool_target": 0})
        assert (await coord.get_config()).warm_pool_target == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"warm_pool_size": 3}, "warm_pool_size"),
        ({"warm_pool_target": "many"}, "warm_pool_target"),
        ({"warm_pool_target": True}, "warm_pool_target"),
        ({"warm_pool_target": -1}, "warm_pool_target"),
        ({"warm_pool_target": 1001}, "warm_pool_target"),
        ({"default_idle_timeout_s": 5}, "default_idle_timeout_s"),
        ({"max_wake_attempts": 0}, "max_wake_attempts"),
        ({"max_wake_attempts": 2, "warm_pool_target": 5000}, "warm_pool_target"),
    ],
)
async def test_invalid_config_is_rejected_whole(
    replicas: Replicas, changes: dict[str, object], named: str
) -> None:
    a, _ = replicas
    with pytest.raises(ValueError, match=named):
        await a.set_config(changes)
    assert await a.get_config() == LiveConfig()  # nothing partially applied


async def test_watch_config_sees_changes_from_another_replica(replicas: Replicas) -> None:
    a, b = replicas
    await a.set_config({"warm_pool_target": 1})
    watch = b.watch_config()
    assert isinstance(watch, AsyncGenerator)  # closable: unsubscribes on aclose()
    try:
        async with asyncio.timeout(5):
            assert (await anext(watch)).warm_pool_target == 1  # current value first
            assert await subscribers(a, CONFIG_CHANNEL) == 1
            await a.set_config({"warm_pool_target": 7})
            assert (await anext(watch)).warm_pool_target == 7
            await a.set_config({"max_wake_attempts": 9})
            seen = await anext(watch)
            assert (seen.warm_pool_target, seen.max_wake_attempts) == (7, 9)
    finally:
        await watch.aclose()
    await eventually(lambda: no_subscribers(a, CONFIG_CHANNEL))


# -- tenant events ---------------------------------------------------------------


async def test_event_log_keeps_order_per_tenant(replicas: Replicas) -> None:
    a, b = replicas
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await a.publish_event("acme", "created", by="admin")
    await b.publish_event("acme", "woken", at=at)
    await a.publish_event("other", "created")
    await a.publish_event("acme", "slept", reason="idle")

    events = await b.event_log("acme")
    assert [e["kind"] for e in events] == ["created", "woken", "slept"]
    assert all(e["tenant_id"] == "acme" for e in events)
    assert events[0]["by"] == "admin"
    assert events[1]["at"] == str(at)
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3
    # ``count`` keeps the newest, still oldest first.
    assert [e["kind"] for e in await a.event_log("acme", count=2)] == ["woken", "slept"]
    assert [e["kind"] for e in await a.event_log("other")] == ["created"]
    assert await a.event_log("nobody") == []


async def test_event_log_is_capped(replicas: Replicas) -> None:
    a, _ = replicas
    total = EVENT_LOG_MAXLEN + 300
    for i in range(total):
        await a.publish_event("chatty", "message", n=i)
    length = await a.redis.xlen(event_log_key("chatty"))
    # Approximate trimming drops whole stream nodes (100 entries each).
    assert EVENT_LOG_MAXLEN <= length <= EVENT_LOG_MAXLEN + 100
    events = await a.event_log("chatty", count=total)
    assert [e["n"] for e in events] == list(range(total - length, total))


async def test_subscribe_events_across_replicas(replicas: Replicas) -> None:
    a, b = replicas
    stream = b.subscribe_events()
    assert isinstance(stream, AsyncGenerator)
    try:
        first = asyncio.ensure_future(anext(stream))

        async def subscribed() -> bool:
            return await subscribers(a, EVENTS_CHANNEL) == 1

        await eventually(subscribed)
        await a.publish_event("acme", "running", endpoint="http://10.0.0.7:8787")
        await a.publish_event("zeta", "deleted")
        await a.publish_event("acme", "stopped")
        # Each tenant's events come in order (its script publishes them from its own
        # slot's node). On a Redis Cluster two tenants' events may cross: each reaches
        # other nodes' subscribers over the cluster bus from its own node; and an earlier
        # test's events (on the shared cluster) may still arrive.
        ours: dict[str, list[dict[str, Any]]] = {"acme": [], "zeta": []}
        async with asyncio.timeout(5):
            event = await first
            while sum(map(len, ours.values())) < 3:
                if event["tenant_id"] in ours:
                    ours[event["tenant_id"]].append(event)
                if sum(map(len, ours.values())) < 3:
                    event = await anext(stream)
        assert ours == {
            "acme": [
                {"tenant_id": "acme", "kind": "running", "endpoint": "http://10.0.0.7:8787"},
                {"tenant_id": "acme", "kind": "stopped"},
            ],
            "zeta": [{"tenant_id": "zeta", "kind": "deleted"}],
        }
    finally:
        await stream.aclose()
    await eventually(lambda: no_subscribers(a, EVENTS_CHANNEL))


async def test_publish_event_never_raises_without_redis() -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        coord = Coordination(client)
        await coord.publish_event("acme", "woken")
        assert await coord.ping() is False
    finally:
        await client.aclose()
