"""The buffer's Redis scripts against a real redis-server: dedupe, fenced ack, dead letters."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from daemon.msgpath.buffer import DEDUPE_TTL_S, Buffer, chat_id_of, lease_key
from daemon.redis_keys import (
    PENDING_KEY,
    PENDING_RECHECK_KEY,
    PENDING_TICKET_KEY,
    seen_key,
    tries_key,
)
from tests.support.redis_cluster import BACKENDS

# Each test that uses Redis runs on a standalone Redis and on a Redis Cluster (with the
# daemon's cluster client): tests/conftest.py parametrizes redis_backend with these.
REDIS_BACKENDS = BACKENDS


@pytest.fixture
def buffer(redis_client: aioredis.Redis) -> Buffer:
    return Buffer(redis_client)


def body(update_id: int, text: str = "hi") -> bytes:
    return json.dumps(
        {"update_id": update_id, "message": {"chat": {"id": 5}, "text": text}}
    ).encode()


async def test_append_dedupes_by_update_id_and_indexes_pending(buffer: Buffer) -> None:
    first = await buffer.append("t1", 10, body(10))
    assert first.added and first.length == 1 and first.entry_id
    assert await buffer.pending_tenants() == ["t1"]
    again = await buffer.append("t1", 10, body(10, "retry"))
    assert not again.added
    await buffer.append("t1", 11, body(11))
    assert [u.update_id for u in await buffer.head("t1")] == [10, 11]
    assert (await buffer.head("t1"))[0].body == body(10)
    assert await buffer.pending_tenants() == ["t1"]
    ttl = await buffer.redis.ttl(seen_key("t1", 10))
    assert DEDUPE_TTL_S - 60 < ttl <= DEDUPE_TTL_S
    # Another tenant's update_id space is separate.
    assert (await buffer.append("t2", 10, body(10))).added


async def test_ack_is_fenced_by_the_lease_and_keeps_dedupe(buffer: Buffer) -> None:
    await buffer.append("t1", 1, body(1))
    await buffer.append("t1", 2, body(2))
    first, second = await buffer.head("t1")
    await buffer.redis.set(lease_key("t1"), "owner-token")
    assert await buffer.ack("t1", first.entry_id, "stale-token") == -1
    assert await buffer.length("t1") == 2
    assert await buffer.ack("t1", first.entry_id, "owner-token") == 1
    assert await buffer.ack("t1", second.entry_id, "owner-token") == 0
    assert await buffer.pending_tenants() == []
    # Delivered updates stay known: a late Telegram retry is not buffered again.
    assert not (await buffer.append("t1", 1, body(1))).added


async def test_failures_and_dead_letters(buffer: Buffer) -> None:
    await buffer.append("t1", 7, body(7, "poison"))
    await buffer.append("t1", 8, body(8))
    poison = (await buffer.head("t1"))[0]
    assert await buffer.record_failure("t1", poison.entry_id) == 1
    assert await buffer.record_failure("t1", poison.entry_id) == 2
    await buffer.redis.set(lease_key("t1"), "tok")
    assert await buffer.dead_letter("t1", poison, "other", "HTTP 400", 2) == -1
    assert await buffer.dead_letter("t1", poison, "tok", "HTTP 400", 2) == 1
    assert [u.update_id for u in await buffer.head("t1")] == [8]
    [dead] = await buffer.dead_letters("t1")
    assert (dead.update_id, dead.reason, dead.attempts) == (7, "HTTP 400", 2)
    assert dead.update["message"]["text"] == "poison"
    assert await buffer.dead_count("t1") == 1
    assert await buffer.redis.hlen(tries_key("t1")) == 0


async def test_check_pending_repairs_index_and_purge(buffer: Buffer) -> None:
    await buffer.append("t1", 1, body(1))
    await buffer.redis.srem(PENDING_KEY, "t1")
    assert await buffer.check_pending("t1") == 1
    assert await buffer.pending_tenants() == ["t1"]
    await buffer.purge("t1")
    assert await buffer.length("t1") == 0
    assert await buffer.check_pending("t1") == 0
    assert await buffer.pending_tenants() == []
    # The dedupe markers went too (found by SCAN, on every node of a cluster): a re-created
    # tenant of the same id gets update_id 1 again.
    assert not await buffer.redis.exists(seen_key("t1", 1))


def test_chat_id_of_known_update_kinds() -> None:
    assert chat_id_of({"update_id": 1, "message": {"chat": {"id": 42}}}) == 42
    assert chat_id_of({"update_id": 1, "edited_message": {"chat": {"id": -7}}}) == -7
    assert chat_id_of({"update_id": 1, "callback_query": {"message": {"chat": {"id": 3}}}}) == 3
    assert chat_id_of({"update_id": 1, "poll": {}}) is None
    assert chat_id_of(b"not json") is None
    assert chat_id_of({"update_id": 1, "message": {"chat": {"id": True}}}) is None


# -- the pending index: kept outside the tenant's scripts (one slot each), crash-safe --------


async def test_a_retry_reindexes_an_update_whose_append_crashed_before_the_index(
    buffer: Buffer,
) -> None:
    await buffer.append("t1", 1, body(1))
    await buffer.redis.srem(PENDING_KEY, "t1")  # the crash: XADD done, SADD not
    assert await buffer.pending_tenants() == []
    assert not (await buffer.append("t1", 1, body(1))).added  # Telegram's retry
    assert await buffer.pending_tenants() == ["t1"]


async def test_a_remover_that_crashed_half_way_leaves_the_tenant_findable(
    buffer: Buffer,
) -> None:
    await buffer.append("t1", 1, body(1))
    # A remover's first step, then its crash (it never read the length nor finished).
    await buffer._unindex_begin(
        keys=[PENDING_KEY, PENDING_RECHECK_KEY, PENDING_TICKET_KEY], args=["t1"]
    )
    assert not await buffer.redis.sismember(PENDING_KEY, "t1")
    assert await buffer.pending_tenants() == ["t1"]  # the sweep still finds it
    assert await buffer.check_pending("t1") == 1
    assert await buffer.redis.sismember(PENDING_KEY, "t1")


async def test_an_append_racing_a_removal_stays_indexed(buffer: Buffer) -> None:
    index = [PENDING_KEY, PENDING_RECHECK_KEY, PENDING_TICKET_KEY]
    # Remover A starts on the drained buffer; an append lands; remover B starts too.
    ticket_a = await buffer._unindex_begin(keys=index, args=["t1"])
    length_a = await buffer.length("t1")
    await buffer.append("t1", 1, body(1))
    ticket_b = await buffer._unindex_begin(keys=index, args=["t1"])
    # A finishes with its stale length (0): B's recheck entry keeps the tenant findable.
    await buffer._unindex_end(keys=index[:2], args=["t1", ticket_a, length_a])
    assert await buffer.pending_tenants() == ["t1"]
    await buffer._unindex_end(keys=index[:2], args=["t1", ticket_b, await buffer.length("t1")])
    assert await buffer.redis.smembers(PENDING_KEY) == {b"t1"}
    assert await buffer.redis.zcard(PENDING_RECHECK_KEY) == 0
