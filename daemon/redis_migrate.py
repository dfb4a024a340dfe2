"""Start-up migration of the Redis key layout of older releases (standalone Redis only).

Older releases named a tenant's keys ``otm:<kind>:<tenant>``; now every tenant key carries the
tenant's hash tag (``otm:{t:<tenant>}:<kind>``, daemon/redis_keys.py) and the global keys that
one script touches together share a tag. An upgraded daemon renames what it finds before it
serves, so buffered updates, dedupe markers (with their TTLs: RENAME keeps them), admin tokens
and usage counters carry over. Idempotent: a second run finds no old names. A name whose new
key exists already (an older replica wrote on during a rolling upgrade) is merged for sets and
hashes; any other type keeps its old key and is logged, never dropped.

Locks and leases are not renamed: they expire within seconds, and the daemons that held them
are gone. A Redis Cluster deployment needs none of this: cluster mode came with the new layout.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from daemon.redis_keys import (
    ADMIN_TOKEN_DIGESTS_KEY,
    ADMIN_TOKENS_KEY,
    PENDING_KEY,
    PREFIX,
    REVOKED_BOOTSTRAP_KEY,
    TENANT_KEY_KINDS,
    WAKE_ADMISSION_PREFIX,
    rate_window_key,
    seen_key,
    tenant_prefix,
    usage_day_key,
    usage_hour_key,
)

log = logging.getLogger(__name__)

BATCH = 500

GLOBAL_RENAMES = {
    PREFIX + "pending": PENDING_KEY,
    PREFIX + "admin-tokens": ADMIN_TOKENS_KEY,
    PREFIX + "admin-token-digests": ADMIN_TOKEN_DIGESTS_KEY,
    PREFIX + "admin-token-revoked": REVOKED_BOOTSTRAP_KEY,
    **{
        f"{PREFIX}wake-admission:{part}": WAKE_ADMISSION_PREFIX + part
        for part in ("holders", "queue", "alive", "seq")
    },
}


def new_name(old: str) -> str | None:
    """The current name of a key an older release wrote; None: not an old-layout key."""
    if old in GLOBAL_RENAMES:
        return GLOBAL_RENAMES[old]
    if not old.startswith(PREFIX) or "{" in old:
        return None
    parts = old[len(PREFIX) :].split(":")
    match parts:
        case [kind, tenant] if kind in TENANT_KEY_KINDS and tenant:
            return f"{tenant_prefix(tenant)}{kind}"
        case ["seen", tenant, update_id] if tenant and _is_int(update_id):
            return seen_key(tenant, int(update_id))
        case ["usage", "day", tenant, day] if tenant and day.isdigit():
            return usage_day_key(tenant, day)
        case ["usage", tenant, hour] if tenant and hour.isdigit():
            return usage_hour_key(tenant, hour)
        case ["ratelimit", name, tenant, window_s, window] if window_s.isdigit() and (
            window.isdigit()
        ):
            return rate_window_key(tenant, name, int(window_s), int(window))
    return None


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def migrate_key_layout(redis: aioredis.Redis) -> int:
    """Rename every old-layout key; returns how many were moved (or merged)."""
    moves: list[tuple[str, str]] = []
    async for raw in redis.scan_iter(match=PREFIX + "*", count=1000):
        key = _text(raw)
        target = new_name(key)
        if target is not None:
            moves.append((key, target))
    moved = 0
    for start in range(0, len(moves), BATCH):
        batch = moves[start : start + BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for old, new in batch:
                pipe.renamenx(old, new)
            results = await pipe.execute(raise_on_error=False)
        for (old, new), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                # The key expired between SCAN and RENAMENX (a TTL'd marker): nothing to keep.
                if "no such key" not in str(result).lower():
                    raise result
            elif result:
                moved += 1
            else:
                moved += await _merge(redis, old, new)
    if moved:
        log.info("renamed %d Redis keys to the hash-tagged layout", moved)
    return moved


async def _merge(redis: aioredis.Redis, old: str, new: str) -> int:
    kind = _text(await redis.type(old))
    if kind == "set":
        await redis.sunionstore(new, [new, old])
    elif kind == "hash":
        # The new key's fields win: they were written later.
        for field, value in (await redis.hgetall(old)).items():
            await redis.hsetnx(new, field, value)
    elif kind == "string" and old.startswith(PREFIX + "seen:"):
        pass  # the same dedupe marker twice
    elif kind == "none":
        return 0
    else:
        log.warning("Redis key %s kept: %s exists already (%s); merge it by hand", old, new, kind)
        return 0
    await redis.delete(old)
    return 1
