"""Per-tenant durable message buffers on Redis.

An update acked to Telegram lives only here until its agent acked it, so every
mutation is one Lua script (atomic, and written to the AOF as one unit):

- ``otm:buf:{id}``      Redis Stream of buffered updates, oldest first
                        (fields ``u`` update_id, ``b`` raw body, ``t`` ms received).
- ``otm:seen:{id}:{u}`` dedupe marker per update_id, TTL 25 h (> Telegram's
                        24 h retry window; deleted with the tenant); set in the same
                        script as the XADD, so a crash can neither lose an update
                        (marker without entry) nor duplicate one (entry without marker).
- ``otm:pending``       set of tenants whose buffer is non-empty: a restarted
                        daemon (or another replica) finds all buffered work here.
- ``otm:tries:{id}``    hash entry-id -> failed delivery attempts (survives
                        restarts, so a poison update is dead-lettered eventually).
- ``otm:dead:{id}``     dead-letter stream (poison updates the agent rejects).
- ``otm:lock:delivery:{id}`` delivery lease (owner token, a Coordination lock);
                        acks are fenced on it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from daemon.msgpath.script_batch import ScriptBatcher
from daemon.redis_keys import (
    PENDING_KEY,
    WORK_CHANNEL,
    dead_key,
    lock_key,
    poll_offset_key,
    seen_key,
    seen_pattern,
    tries_key,
)
from daemon.redis_keys import buffer_key as buf_key
from daemon.redis_keys import delivery_lease_name as lease_name

DEDUPE_TTL_S = 25 * 3600
DEAD_LETTER_MAXLEN = 1000


async def purge_dedupe_markers(redis: aioredis.Redis, tenant_id: str) -> int:
    """Delete every ``otm:seen:{id}:*`` marker (SCAN: tenant deletion is rare, and the
    markers cannot live under one key: each has its own TTL)."""
    deleted = 0
    batch: list[Any] = []
    async for key in redis.scan_iter(match=seen_pattern(tenant_id), count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(await redis.unlink(*batch))
            batch = []
    if batch:
        deleted += int(await redis.unlink(*batch))
    return deleted


def lease_key(tenant_id: str) -> str:
    # The key Coordination.acquire_lock takes and renews the delivery lease under.
    return lock_key(lease_name(tenant_id))


# KEYS: buf, seen, pending   ARGV: update_id, body, ttl_ms, tenant_id, now_ms
# Returns {entry_id, length} when appended, false when update_id was seen before.
# The entry is written before the marker: Redis does not undo a script's writes when a later
# command fails, so an XADD refused half-way must not leave a marker that drops the retry.
APPEND_LUA = """
if redis.call('exists', KEYS[2]) == 1 then return false end
local id = redis.call('xadd', KEYS[1], '*', 'u', ARGV[1], 'b', ARGV[2], 't', ARGV[5])
redis.call('set', KEYS[2], '1', 'PX', ARGV[3])
redis.call('sadd', KEYS[3], ARGV[4])
return {id, redis.call('xlen', KEYS[1])}
"""

# KEYS: buf, tries, pending, lease   ARGV: tenant_id, lease_token, entry_id...
# Fenced: only the current lease owner may ack. Removes the entries (a batch delivered in
# order) in one round trip. Returns remaining length, or -1 when the lease was lost (the
# caller must stop delivering).
ACK_MANY_LUA = """
if redis.call('get', KEYS[4]) ~= ARGV[2] then return -1 end
for i = 3, #ARGV do
  redis.call('xdel', KEYS[1], ARGV[i])
  redis.call('hdel', KEYS[2], ARGV[i])
end
local n = redis.call('xlen', KEYS[1])
if n == 0 then redis.call('srem', KEYS[3], ARGV[1]) end
return n
"""

# KEYS: buf, tries, pending, lease, dead   ARGV: entry_id, tenant_id, lease_token,
#   update_id, body, reason, attempts, now_ms, dead_maxlen
DEAD_LETTER_LUA = """
if redis.call('get', KEYS[4]) ~= ARGV[3] then return -1 end
redis.call('xadd', KEYS[5], 'MAXLEN', '~', ARGV[9], '*', 'u', ARGV[4], 'b', ARGV[5],
  'reason', ARGV[6], 'attempts', ARGV[7], 't', ARGV[8], 'entry', ARGV[1])
redis.call('xdel', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
local n = redis.call('xlen', KEYS[1])
if n == 0 then redis.call('srem', KEYS[3], ARGV[2]) end
return n
"""

# KEYS: buf, pending   ARGV: tenant_id.  Keeps the pending index honest.
CHECK_PENDING_LUA = """
local n = redis.call('xlen', KEYS[1])
if n == 0 then redis.call('srem', KEYS[2], ARGV[1]) else redis.call('sadd', KEYS[2], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class BufferedUpdate:
    entry_id: str
    update_id: int
    body: bytes
    received_ms: int

    def chat_id(self) -> int | None:
        """Chat to tell "starting up" (message, edits, channel posts, callback queries)."""
        return chat_id_of(self.body)


@dataclass(frozen=True)
class AppendResult:
    added: bool
    """False: a retry of an update_id already buffered or delivered."""
    entry_id: str | None
    length: int


@dataclass(frozen=True)
class DeadLetter:
    id: str
    update_id: int
    reason: str
    attempts: int
    at_ms: int
    update: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "update_id": self.update_id,
            "reason": self.reason,
            "attempts": self.attempts,
            "at_ms": self.at_ms,
            "update": self.update,
        }


def chat_id_of(body: bytes | dict[str, Any]) -> int | None:
    try:
        update = json.loads(body) if isinstance(body, bytes) else body
    except ValueError:
        return None
    if not isinstance(update, dict):
        return None
    for key in ("message", "edited_message", "channel_post", "business_message"):
        message = update.get(key)
        if isinstance(message, dict):
            return _chat(message)
    query = update.get("callback_query")
    if isinstance(query, dict) and isinstance(query.get("message"), dict):
        return _chat(query["message"])
    return None


def _chat(message: dict[str, Any]) -> int | None:
    chat = message.get("chat")
    value = chat.get("id") if isinstance(chat, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Buffer:
    """Typed operations on the buffers; every method is one Redis round trip."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        # Appends made in one loop turn (concurrent webhooks) share one round trip.
        self._append = ScriptBatcher(redis, APPEND_LUA)
        self._ack_many = redis.register_script(ACK_MANY_LUA)
        self._dead = redis.register_script(DEAD_LETTER_LUA)
        self._check = redis.register_script(CHECK_PENDING_LUA)

    async def append(self, tenant_id: str, update_id: int, body: bytes) -> AppendResult:
        now_ms = int(time.time() * 1000)
        result = await self._append(
            keys=[buf_key(tenant_id), seen_key(tenant_id, update_id), PENDING_KEY],
            args=[update_id, body, DEDUPE_TTL_S * 1000, tenant_id, now_ms],
        )
        if not result:
            return AppendResult(added=False, entry_id=None, length=-1)
        entry_id, length = result
        return AppendResult(added=True, entry_id=_s(entry_id), length=int(length))

    async def head(self, tenant_id: str, count: int = 16) -> list[BufferedUpdate]:
        """The oldest ``count`` buffered updates, in order."""
        entries: Any = await self.redis.xrange(buf_key(tenant_id), "-", "+", count=count)
        return [
            BufferedUpdate(
                entry_id=_s(entry_id),
                update_id=int(fields[b"u"]),
                body=bytes(fields[b"b"]),
                received_ms=int(fields.get(b"t", 0)),
            )
            for entry_id, fields in entries
        ]

    async def length(self, tenant_id: str) -> int:
        return int(await self.redis.xlen(buf_key(tenant_id)))

    async def ack(self, tenant_id: str, entry_id: str, lease_token: str) -> int:
        """Remove a delivered update; -1 if the lease was lost (nothing removed)."""
        return await self.ack_many(tenant_id, [entry_id], lease_token)

    async def ack_many(self, tenant_id: str, entry_ids: list[str], lease_token: str) -> int:
        """Remove delivered updates; -1 if the lease was lost (nothing removed)."""
        return int(
            await self._ack_many(
                keys=[buf_key(tenant_id), tries_key(tenant_id), PENDING_KEY, lease_key(tenant_id)],
                args=[tenant_id, lease_token, *entry_ids],
            )
        )

    async def record_failure(self, tenant_id: str, entry_id: str) -> int:
        """Count one failed attempt of an entry; returns the total so far."""
        return int(await self.redis.hincrby(tries_key(tenant_id), entry_id, 1))

    async def dead_letter(
        self, tenant_id: str, update: BufferedUpdate, lease_token: str, reason: str, attempts: int
    ) -> int:
        return int(
            await self._dead(
                keys=[
                    buf_key(tenant_id),
                    tries_key(tenant_id),
                    PENDING_KEY,
                    lease_key(tenant_id),
                    dead_key(tenant_id),
                ],
                args=[
                    update.entry_id,
                    tenant_id,
                    lease_token,
                    update.update_id,
                    update.body,
                    reason,
                    attempts,
                    int(time.time() * 1000),
                    DEAD_LETTER_MAXLEN,
                ],
            )
        )

    async def dead_letters(self, tenant_id: str, count: int = 100) -> list[DeadLetter]:
        entries: Any = await self.redis.xrevrange(dead_key(tenant_id), count=count)
        out: list[DeadLetter] = []
        for entry_id, fields in reversed(entries):
            try:
                update = json.loads(fields[b"b"])
            except ValueError:
                update = _s(fields[b"b"])
            out.append(
                DeadLetter(
                    id=_s(entry_id),
                    update_id=int(fields[b"u"]),
                    reason=_s(fields[b"reason"]),
                    attempts=int(fields[b"attempts"]),
                    at_ms=int(fields[b"t"]),
                    update=update,
                )
            )
        return out

    async def dead_count(self, tenant_id: str) -> int:
        return int(await self.redis.xlen(dead_key(tenant_id)))

    async def pending_tenants(self) -> list[str]:
        members: Any = await self.redis.smembers(PENDING_KEY)
        return sorted(_s(m) for m in members)

    async def check_pending(self, tenant_id: str) -> int:
        """Buffer length, fixing the pending index to match it."""
        return int(await self._check(keys=[buf_key(tenant_id), PENDING_KEY], args=[tenant_id]))

    async def purge(self, tenant_id: str) -> None:
        """Drop everything of a deleted tenant, dedupe markers and long-polling offsets
        included (a re-created tenant of the same id would otherwise silently drop reused
        update_ids)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(
                buf_key(tenant_id),
                tries_key(tenant_id),
                dead_key(tenant_id),
                poll_offset_key(tenant_id),
            )
            pipe.srem(PENDING_KEY, tenant_id)
            await pipe.execute()
        await purge_dedupe_markers(self.redis, tenant_id)

    async def signal_work(self, tenant_id: str, origin: str) -> None:
        """Tell other replicas a tenant has buffered work (the lease holder picks it up).
        ``origin`` (the sender's node id) lets the sender ignore its own signal."""
        await self.redis.publish(WORK_CHANNEL, f"{origin} {tenant_id}")
