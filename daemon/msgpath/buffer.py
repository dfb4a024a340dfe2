"""Per-tenant durable message buffers on Redis.

An update acked to Telegram lives only here until its agent acked it, so every
mutation of a tenant's keys is one Lua script (atomic, and written to the AOF as one unit).
All of a tenant's keys carry its hash tag ``{t:<id>}`` (daemon/redis_keys.py), so each script
touches one slot and runs on a Redis Cluster too:

- ``otm:{t:<id>}:buf``      Redis Stream of buffered updates, oldest first
                            (fields ``u`` update_id, ``b`` raw body, ``t`` ms received).
- ``otm:{t:<id>}:seen:<u>`` dedupe marker per update_id, TTL 25 h (> Telegram's
                            24 h retry window; deleted with the tenant); set in the same
                            script as the XADD, so a crash can neither lose an update
                            (marker without entry) nor duplicate one (entry without marker).
- ``otm:{t:<id>}:tries``    hash entry-id -> failed delivery attempts (survives
                            restarts, so a poison update is dead-lettered eventually).
- ``otm:{t:<id>}:dead``     dead-letter stream (poison updates the agent rejects).
- ``otm:lock:{t:<id>}:delivery`` delivery lease (owner token, a Coordination lock);
                            acks are fenced on it.

The pending index (a restarted daemon, or another replica, finds all buffered work there)
is global, so no tenant script may touch it on a Redis Cluster (on one Redis the removal
scripts do). Its rule: every tenant whose buffer holds an
entry its appender finished with is in ``{pending}:tenants`` or ``{pending}:recheck``.

- An append adds the tenant to ``tenants`` *after* its XADD. A crash between the two leaves
  the update unacknowledged upstream (the webhook answers, the poller commits its offset,
  only after ``append`` returned), so it is sent again; the retry is a duplicate, and a
  duplicate re-indexes a non-empty buffer.
- A removal (the buffer drained) on one Redis is one script (length 0: SREM; after an ack,
  the ack's own script). On a Redis
  Cluster, where no script may touch both slots, it moves the tenant from ``tenants`` to
  ``recheck`` in one script (one slot) with a fresh ticket, then reads the buffer's length,
  then (one script) drops the ``recheck`` entry if it still holds its ticket and re-adds
  the tenant to ``tenants`` if the length was > 0. An append whose XADD came before the
  move is seen by that read; one whose XADD came after adds the tenant itself, after the
  move. A remover that crashes half-way leaves the tenant in ``recheck``, which the sweep
  reads like ``tenants``: at worst one needless look at an empty buffer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from daemon.redis_keys import (
    PENDING_KEY,
    PENDING_RECHECK_KEY,
    PENDING_TICKET_KEY,
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
from daemon.script_batch import ScriptBatcher

DEDUPE_TTL_S = 25 * 3600
DEAD_LETTER_MAXLEN = 1000


async def purge_dedupe_markers(redis: aioredis.Redis, tenant_id: str) -> int:
    """Delete every ``otm:{t:<id>}:seen:*`` marker (SCAN: tenant deletion is rare, and the
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


# KEYS: buf, seen   ARGV: update_id, body, ttl_ms, now_ms, tenant_id (for the index only)
# Returns {entry_id, length} when appended, false when update_id was seen before.
# The entry is written before the marker: Redis does not undo a script's writes when a later
# command fails, so an XADD refused half-way must not leave a marker that drops the retry.
APPEND_LUA = """
if redis.call('exists', KEYS[2]) == 1 then return false end
local id = redis.call('xadd', KEYS[1], '*', 'u', ARGV[1], 'b', ARGV[2], 't', ARGV[4])
redis.call('set', KEYS[2], '1', 'PX', ARGV[3])
return {id, redis.call('xlen', KEYS[1])}
"""

# KEYS: buf, tries, lease[, the pending index]   ARGV: lease_token, tenant_id, entry_id...
# Fenced: only the current lease owner may ack. Removes the entries (a batch delivered in
# order) in one round trip. Returns remaining length, or -1 when the lease was lost (the
# caller must stop delivering). Given the index (one Redis only: on a cluster it is another
# slot), an ack that empties the buffer also takes the tenant out of it, in the same trip.
ACK_MANY_LUA = """
if redis.call('get', KEYS[3]) ~= ARGV[1] then return -1 end
for i = 3, #ARGV do
  redis.call('xdel', KEYS[1], ARGV[i])
  redis.call('hdel', KEYS[2], ARGV[i])
end
local n = redis.call('xlen', KEYS[1])
if n == 0 and #KEYS == 4 then redis.call('srem', KEYS[4], ARGV[2]) end
return n
"""

# KEYS: buf, tries, lease, dead   ARGV: entry_id, lease_token,
#   update_id, body, reason, attempts, now_ms, dead_maxlen
DEAD_LETTER_LUA = """
if redis.call('get', KEYS[3]) ~= ARGV[2] then return -1 end
redis.call('xadd', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'u', ARGV[3], 'b', ARGV[4],
  'reason', ARGV[5], 'attempts', ARGV[6], 't', ARGV[7], 'entry', ARGV[1])
redis.call('xdel', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
return redis.call('xlen', KEYS[1])
"""

# The pending index's removal, in two single-slot steps around a read of the buffer's length
# (see the module docstring).
# KEYS: tenants, recheck, ticket   ARGV: tenant_id.  Returns the remover's ticket.
UNINDEX_BEGIN_LUA = """
redis.call('srem', KEYS[1], ARGV[1])
local ticket = redis.call('incr', KEYS[3])
redis.call('zadd', KEYS[2], ticket, ARGV[1])
return ticket
"""
# KEYS: tenants, recheck   ARGV: tenant_id, ticket, buffer length read after the begin step.
UNINDEX_END_LUA = """
if tonumber(ARGV[3]) > 0 then redis.call('sadd', KEYS[1], ARGV[1]) end
if tonumber(redis.call('zscore', KEYS[2], ARGV[1]) or '-1') == tonumber(ARGV[2]) then
  redis.call('zrem', KEYS[2], ARGV[1])
end
return 1
"""
# One Redis only (two slots): KEYS: buf, the pending index   ARGV: tenant id
UNINDEX_IF_EMPTY_LUA = """
local n = redis.call('xlen', KEYS[1])
if n == 0 then redis.call('srem', KEYS[2], ARGV[1]) end
return n
"""
# KEYS: the pending index   ARGV: tenant id
INDEX_LUA = "return redis.call('sadd', KEYS[1], ARGV[1])"


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
    update: BufferedUpdate | None = None
    """The entry as buffered (when added): what a delivery worker would read back."""


@dataclass(frozen=True)
class DeadLetter:
    id: str
    update_id: int
    reason: str
    attempts: int
    at_ms: int
    update: Any

    def as_dict(self) -> dict[str, Any]:
        """What ``GET /v1/tenants/{id}/dead-letters`` lists: every field."""
        return asdict(self)


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


def _index_after_append(pipe: Any, keys: Sequence[Any], args: Sequence[Any]) -> None:
    """The pending index entry of an append (its last argument is the tenant id)."""
    pipe.sadd(PENDING_KEY, args[-1])


class Buffer:
    """Typed operations on the buffers; each is one Redis round trip, but for taking a
    drained tenant out of the pending index (on one Redis: one more after a dead letter
    or a purge, none after an ack; three more on a cluster)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        # Appends made in one loop turn (concurrent webhooks) share one round trip.
        # The index is global, so it cannot join the tenant's script. On one Redis its SADD
        # follows each append in the same pipeline (one connection: it runs after the
        # XADD); a Redis Cluster splits a pipeline per node with no order between nodes,
        # so there each append indexes in a second round trip (batched per turn too).
        self._cluster = isinstance(redis, RedisCluster)
        self._append = ScriptBatcher(
            redis, APPEND_LUA, follow_up=None if self._cluster else _index_after_append
        )
        self._index = ScriptBatcher(redis, INDEX_LUA)
        # Acks of one loop turn (many tenants' workers) share a round trip too.
        self._ack_many = ScriptBatcher(redis, ACK_MANY_LUA)
        self._dead = redis.register_script(DEAD_LETTER_LUA)
        self._unindex_begin = redis.register_script(UNINDEX_BEGIN_LUA)
        self._unindex_end = redis.register_script(UNINDEX_END_LUA)
        self._unindex_if_empty = redis.register_script(UNINDEX_IF_EMPTY_LUA)

    async def append(self, tenant_id: str, update_id: int, body: bytes) -> AppendResult:
        now_ms = int(time.time() * 1000)
        result = await self._append(
            keys=[buf_key(tenant_id), seen_key(tenant_id, update_id)],
            args=[update_id, body, DEDUPE_TTL_S * 1000, now_ms, tenant_id],
        )
        if not result:
            # A retry: its first attempt may have crashed between the XADD and the index.
            # (One Redis: the follow-up in this append's pipeline has re-indexed it already.)
            if self._cluster and await self.length(tenant_id) > 0:
                await self._index(keys=[PENDING_KEY], args=[tenant_id])
            return AppendResult(added=False, entry_id=None, length=-1)
        entry_id, length = result
        if self._cluster:
            await self._index(keys=[PENDING_KEY], args=[tenant_id])  # after the XADD
        # (one Redis: indexed by the follow-up in the append's own pipeline)
        update = BufferedUpdate(_s(entry_id), update_id, body, now_ms)
        return AppendResult(True, update.entry_id, int(length), update)

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
        keys = [buf_key(tenant_id), tries_key(tenant_id), lease_key(tenant_id)]
        args = [lease_token, tenant_id, *entry_ids]
        if not self._cluster:
            return int(await self._ack_many(keys=[*keys, PENDING_KEY], args=args))
        remaining = int(await self._ack_many(keys=keys, args=args))
        return await self._unindex(tenant_id) if remaining == 0 else remaining

    async def record_failure(self, tenant_id: str, entry_id: str) -> int:
        """Count one failed attempt of an entry; returns the total so far."""
        return int(await self.redis.hincrby(tries_key(tenant_id), entry_id, 1))

    async def dead_letter(
        self, tenant_id: str, update: BufferedUpdate, lease_token: str, reason: str, attempts: int
    ) -> int:
        remaining = int(
            await self._dead(
                keys=[
                    buf_key(tenant_id),
                    tries_key(tenant_id),
                    lease_key(tenant_id),
                    dead_key(tenant_id),
                ],
                args=[
                    update.entry_id,
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
        return await self._unindex(tenant_id) if remaining == 0 else remaining

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
        """Tenants that may have buffered updates (both parts of the index)."""
        members: Any = await self.redis.smembers(PENDING_KEY)
        rechecks: Any = await self.redis.zrange(PENDING_RECHECK_KEY, 0, -1)
        return sorted({_s(m) for m in members} | {_s(m) for m in rechecks})

    async def check_pending(self, tenant_id: str) -> int:
        """Buffer length, fixing the pending index to match it."""
        length = await self.length(tenant_id)
        if length > 0:
            await self.redis.sadd(PENDING_KEY, tenant_id)
            return length
        return await self._unindex(tenant_id)

    async def _unindex(self, tenant_id: str) -> int:
        """Take a drained tenant out of the pending index (crash-safe: module docstring);
        returns the buffer's length read in between (> 0: an append raced, still indexed)."""
        if not self._cluster:
            # One Redis: the length check and the removal in one script, one round trip
            # (the two-step protocol exists only because a cluster cannot do this).
            keys = [buf_key(tenant_id), PENDING_KEY]
            return int(await self._unindex_if_empty(keys=keys, args=[tenant_id]))
        ticket = await self._unindex_begin(
            keys=[PENDING_KEY, PENDING_RECHECK_KEY, PENDING_TICKET_KEY], args=[tenant_id]
        )
        length = await self.length(tenant_id)
        await self._unindex_end(
            keys=[PENDING_KEY, PENDING_RECHECK_KEY], args=[tenant_id, int(ticket), length]
        )
        return length

    async def purge(self, tenant_id: str) -> None:
        """Drop everything of a deleted tenant, dedupe markers and long-polling offsets
        included (a re-created tenant of the same id would otherwise silently drop reused
        update_ids)."""
        await self.redis.delete(
            buf_key(tenant_id),
            tries_key(tenant_id),
            dead_key(tenant_id),
            poll_offset_key(tenant_id),
        )
        await self._unindex(tenant_id)
        await purge_dedupe_markers(self.redis, tenant_id)

    async def signal_work(self, tenant_id: str, origin: str) -> None:
        """Tell other replicas a tenant has buffered work (the lease holder picks it up).
        ``origin`` (the sender's node id) lets the sender ignore its own signal."""
        await self.redis.publish(WORK_CHANNEL, f"{origin} {tenant_id}")
