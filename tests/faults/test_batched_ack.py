"""Buffer.ack_many (the delivery worker acks a delivered batch at once) against a real
redis-server: fenced on the lease like a single ack, keeps dedupe, fixes the index."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from daemon.msgpath.buffer import Buffer, lease_key
from daemon.redis_keys import tries_key


@pytest.fixture
def buffer(redis_client: aioredis.Redis) -> Buffer:
    return Buffer(redis_client)


def body(update_id: int) -> bytes:
    return json.dumps({"update_id": update_id, "message": {"chat": {"id": 5}}}).encode()


async def test_ack_many_is_fenced_and_removes_only_the_given_entries(buffer: Buffer) -> None:
    for n in range(1, 6):
        await buffer.append("t1", n, body(n))
    entries = await buffer.head("t1")
    await buffer.record_failure("t1", entries[0].entry_id)
    await buffer.redis.set(lease_key("t1"), "owner")
    first_three = [e.entry_id for e in entries[:3]]
    assert await buffer.ack_many("t1", first_three, "stale") == -1
    assert await buffer.length("t1") == 5
    assert await buffer.ack_many("t1", first_three, "owner") == 2
    assert [u.update_id for u in await buffer.head("t1")] == [4, 5]
    assert await buffer.redis.hlen(tries_key("t1")) == 0
    assert await buffer.pending_tenants() == ["t1"]
    # Acking an entry twice (a retried round trip) is harmless.
    assert await buffer.ack_many("t1", first_three, "owner") == 2
    assert await buffer.ack_many("t1", [e.entry_id for e in entries[3:]], "owner") == 0
    assert await buffer.pending_tenants() == []
    # Retries of acked updates are still recognised as duplicates.
    assert not (await buffer.append("t1", 2, body(2))).added
