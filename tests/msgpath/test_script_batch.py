"""Appends coalesced into pipelines (ScriptBatcher) against a real redis-server."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from daemon.msgpath.buffer import Buffer
from daemon.redis_keys import buffer_key
from daemon.script_batch import MAX_BATCH, ScriptBatcher


def body(update_id: int) -> bytes:
    return json.dumps({"update_id": update_id, "message": {"chat": {"id": 5}}}).encode()


async def test_appends_of_one_loop_turn_share_one_round_trip_in_call_order(
    redis_client: aioredis.Redis,
) -> None:
    buffer = Buffer(redis_client)
    batcher = buffer._append
    assert isinstance(batcher, ScriptBatcher)
    await buffer.append("warm-up", 1, body(1))  # the script is in Redis's cache from here on
    batcher.round_trips = 0
    results = await asyncio.gather(*(buffer.append("t1", n, body(n)) for n in range(1, 41)))
    assert batcher.round_trips == 1
    assert [r.length for r in results] == list(range(1, 41))
    assert [u.update_id for u in await buffer.head("t1", 100)] == list(range(1, 41))
    # A retry in the same turn as new updates is still recognised as one.
    again = await asyncio.gather(buffer.append("t1", 5, body(5)), buffer.append("t1", 41, body(41)))
    assert [r.added for r in again] == [False, True]
    assert batcher.round_trips == 2


async def test_script_cache_lost_runs_every_call_exactly_once(
    redis_client: aioredis.Redis,
) -> None:
    buffer = Buffer(redis_client)
    await buffer.append("t1", 1, body(1))
    await redis_client.script_flush()  # what a Redis restart does to the script cache
    results = await asyncio.gather(*(buffer.append("t1", n, body(n)) for n in range(2, 12)))
    assert all(r.added for r in results)
    assert [u.update_id for u in await buffer.head("t1", 100)] == list(range(1, 12))


async def test_one_failing_call_fails_only_its_caller(redis_client: aioredis.Redis) -> None:
    buffer = Buffer(redis_client)
    await redis_client.set(buffer_key("broken"), "not a stream")
    other = buffer.append("t1", 1, body(1))
    broken = buffer.append("broken", 1, body(1))
    results = await asyncio.gather(other, broken, return_exceptions=True)
    assert results[0].added  # type: ignore[union-attr]
    assert isinstance(results[1], aioredis.ResponseError)


async def test_unreachable_redis_fails_every_caller() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        buffer = Buffer(client)
        results = await asyncio.gather(
            *(buffer.append("t1", n, body(n)) for n in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, aioredis.ConnectionError) for r in results)
    finally:
        await client.aclose()


@pytest.mark.parametrize("count", [1, 600])
async def test_big_turns_are_split_and_lone_calls_still_go(
    redis_client: aioredis.Redis, count: int
) -> None:
    buffer = Buffer(redis_client)
    batcher = buffer._append
    assert isinstance(batcher, ScriptBatcher)
    await buffer.append("warm-up", 1, body(1))
    batcher.round_trips = 0
    results = await asyncio.gather(*(buffer.append("t1", n, body(n)) for n in range(count)))
    assert len({r.entry_id for r in results}) == count
    assert await buffer.length("t1") == count
    assert batcher.round_trips == -(-count // MAX_BATCH)


async def test_on_one_redis_appends_index_in_their_own_round_trip(
    redis_client: aioredis.Redis,
) -> None:
    """The pending index's SADD rides in the append's pipeline (after its XADD), so a turn
    of appends costs one round trip, not two."""
    buffer = Buffer(redis_client)
    await buffer.append("warm-up", 1, body(1))
    buffer._append.round_trips = buffer._index.round_trips = 0
    await asyncio.gather(*(buffer.append(f"t{n % 3}", n, body(n)) for n in range(30)))
    assert (buffer._append.round_trips, buffer._index.round_trips) == (1, 0)
    assert set(await buffer.pending_tenants()) >= {"t0", "t1", "t2"}
