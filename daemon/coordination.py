"""Coordination on Redis: endpoint cache, wake lock, live config, tenant events.

Every replica shares one Redis; these are the only cross-replica primitives
besides the registry's conditional writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import redis.asyncio as aioredis

from daemon.redis_keys import CONFIG_CHANNEL, CONFIG_KEY, EVENTS_CHANNEL, endpoint_key, lock_key
from daemon.redis_keys import event_log_key as _event_log_key
from daemon.script_batch import ScriptBatcher

log = logging.getLogger(__name__)

# Per-tenant event log kept short: it is for operators, not an audit trail.
EVENT_LOG_MAXLEN = 500

# Release/extend only if we still own the lock (fencing by owner token): never touch
# a lock or lease another owner took after ours expired. Shared with leader.RedisLease.
RELEASE_IF_OWNER_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
EXTEND_IF_OWNER_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: config   ARGV: channel, message, field, value, ...  Stores the changes and tells every
# replica in one step (a script, not MULTI: PUBLISH has no key for a cluster client to route).
SET_CONFIG_LUA = """
for i = 3, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('publish', ARGV[1], ARGV[2])
"""

# KEYS: the tenant's event log   ARGV: maxlen, event, channel.  Logs and tells live watchers
# in one round trip (a script: a cluster client refuses PUBLISH inside a pipeline).
PUBLISH_EVENT_LUA = """
redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2])
return redis.call('publish', ARGV[3], ARGV[2])
"""


@dataclass(frozen=True)
class LiveConfig:
    """Settings operators change at run time (CLI/TUI); shared by all replicas."""

    warm_pool_target: int = 0
    default_idle_timeout_s: int = 600
    max_wake_attempts: int = 5
    max_concurrent_wakes: int = 10
    """Cluster-wide cap on wakes in progress (daemon/msgpath/wake_admission.py); more queue FIFO."""

    @staticmethod
    def validate_changes(changes: dict[str, Any]) -> dict[str, int]:
        """Check a partial update; ValueError names the offending key."""
        known = {f.name for f in fields(LiveConfig)}
        out: dict[str, int] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown config key {key!r} (known: {', '.join(sorted(known))})")
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    value = int(str(value))
                except ValueError:
                    raise ValueError(f"{key} must be an integer, got {value!r}") from None
            if key == "warm_pool_target" and not 0 <= value <= 1000:
                raise ValueError("warm_pool_target must be between 0 and 1000")
            if key == "default_idle_timeout_s" and not 30 <= value <= 7 * 86400:
                raise ValueError("default_idle_timeout_s must be between 30 and 604800")
            if key == "max_wake_attempts" and not 1 <= value <= 100:
                raise ValueError("max_wake_attempts must be between 1 and 100")
            if key == "max_concurrent_wakes" and not 1 <= value <= 10000:
                raise ValueError("max_concurrent_wakes must be between 1 and 10000")
            out[key] = value
        return out


async def keep_renewed(
    name: str,
    renew: Callable[[], Awaitable[bool]],
    ttl_s: float,
    released: asyncio.Event,
    on_lost: Callable[[], object] | None = None,
) -> None:
    """Call ``renew`` every third of ``ttl_s`` until ``released`` is set. A failed renewal
    is retried; a refused one (False: expired, or another owner) logs, calls ``on_lost``
    and ends. ``released`` is a flag, not only a cancel: redis-py may swallow a
    cancellation inside a command."""
    while not released.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ttl_s / 3):
                await released.wait()
        if released.is_set():
            return
        try:
            held = await renew()
        except Exception as exc:
            log.warning("could not extend %s: %s", name, exc)
            continue
        if not held and not released.is_set():
            log.error("lost %s while holding it", name)
            if on_lost is not None:
                on_lost()
            return


class Coordination:
    """Thin typed layer over one shared redis.asyncio client."""

    def __init__(self, redis: aioredis.Redis, *, config_defaults: LiveConfig | None = None) -> None:
        self.redis = redis
        self._config_defaults = config_defaults or LiveConfig()
        self._release = redis.register_script(RELEASE_IF_OWNER_LUA)
        # One registration serves a single renewal and the delivery leases' batched ones.
        self._extend = ScriptBatcher(redis, EXTEND_IF_OWNER_LUA)
        self._set_config = redis.register_script(SET_CONFIG_LUA)
        self._publish_event = redis.register_script(PUBLISH_EVENT_LUA)

    # -- endpoint cache ---------------------------------------------------
    _endpoint_key = staticmethod(endpoint_key)

    async def get_endpoint(self, tenant_id: str) -> str | None:
        value = await self.redis.get(self._endpoint_key(tenant_id))
        return value.decode() if isinstance(value, bytes) else value

    async def set_endpoint(self, tenant_id: str, endpoint: str, ttl_s: float) -> None:
        await self.redis.set(self._endpoint_key(tenant_id), endpoint, px=int(ttl_s * 1000))

    async def delete_endpoint(self, tenant_id: str, *, only_if: str | None = None) -> bool:
        """Drop the cached endpoint; with ``only_if`` only when it still holds that
        value (so a stale failure never removes a fresh endpoint)."""
        key = self._endpoint_key(tenant_id)
        if only_if is None:
            return bool(await self.redis.delete(key))
        return bool(await self._release(keys=[key], args=[only_if]))

    # -- locks --------------------------------------------------------------
    _lock_key = staticmethod(lock_key)

    async def acquire_lock(self, name: str, ttl_s: float) -> str | None:
        """Owner token if acquired, None if someone else holds it."""
        token = secrets.token_hex(16)
        ok = await self.redis.set(self._lock_key(name), token, nx=True, px=int(ttl_s * 1000))
        return token if ok else None

    async def extend_lock(self, name: str, token: str, ttl_s: float) -> bool:
        return (await self.extend_locks([(name, token)], ttl_s))[0]

    async def extend_locks(self, held: Sequence[tuple[str, str]], ttl_s: float) -> list[bool]:
        """``extend_lock`` for many (name, token) pairs, sent together in pipelined round
        trips (script_batch.py); whether each is still held."""
        ttl_ms = int(ttl_s * 1000)
        results = await asyncio.gather(
            *(
                self._extend(keys=[self._lock_key(name)], args=[token, ttl_ms])
                for name, token in held
            )
        )
        return [bool(result) for result in results]

    async def release_lock(self, name: str, token: str) -> bool:
        """Fenced release: only the owner's token deletes the lock."""
        return bool(await self._release(keys=[self._lock_key(name)], args=[token]))

    async def keep_alive(
        self,
        name: str,
        token: str,
        ttl_s: float,
        released: asyncio.Event,
        on_lost: Callable[[], object] | None = None,
    ) -> None:
        """Extend a held lock or lease every third of its TTL until ``released`` is set.
        Losing it (expired, or another owner) logs, calls ``on_lost`` and ends; a failed
        extension is retried. ``released`` is a flag, not only a cancel: redis-py may
        swallow a cancellation inside a command."""
        await keep_renewed(
            name, lambda: self.extend_lock(name, token, ttl_s), ttl_s, released, on_lost
        )

    async def lock_owner(self, name: str) -> str | None:
        value = await self.redis.get(self._lock_key(name))
        return value.decode() if isinstance(value, bytes) else value

    # -- live config ----------------------------------------------------------
    async def get_config(self) -> LiveConfig:
        raw = await self.redis.hgetall(CONFIG_KEY)
        stored = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        known = {f.name for f in fields(LiveConfig)}
        return replace(self._config_defaults, **{k: v for k, v in stored.items() if k in known})

    async def set_config(self, changes: dict[str, Any]) -> LiveConfig:
        valid = LiveConfig.validate_changes(changes)
        if valid:
            pairs = [item for key, value in valid.items() for item in (key, value)]
            await self._set_config(
                keys=[CONFIG_KEY], args=[CONFIG_CHANNEL, json.dumps(valid), *pairs]
            )
        return await self.get_config()

    async def watch_config(self) -> AsyncIterator[LiveConfig]:
        """Yield the current config, then again after every change (any replica)."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CONFIG_CHANNEL)
        try:
            yield await self.get_config()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield await self.get_config()
        finally:
            await pubsub.unsubscribe(CONFIG_CHANNEL)
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    # -- tenant events (operator-facing) ---------------------------------------
    _event_log_key = staticmethod(_event_log_key)

    async def publish_event(self, tenant_id: str, kind: str, **data: Any) -> None:
        """Append to the tenant's event log and tell live watchers (TUI, -w).
        Never raises: an event is worth less than the operation it reports."""
        payload = {"tenant_id": tenant_id, "kind": kind, **data}
        body = json.dumps(payload, default=str)
        try:
            await self._publish_event(
                keys=[self._event_log_key(tenant_id)],
                args=[EVENT_LOG_MAXLEN, body, EVENTS_CHANNEL],
            )
        except aioredis.RedisError as exc:
            log.warning("could not publish %s event for %s: %s", kind, tenant_id, exc)

    async def delete_event_log(self, tenant_id: str) -> None:
        """Forget a deleted tenant's history, so a re-created one starts clean."""
        await self.redis.delete(self._event_log_key(tenant_id))

    async def event_log(self, tenant_id: str, count: int = 100) -> list[dict[str, Any]]:
        entries: Any = await self.redis.xrevrange(self._event_log_key(tenant_id), count=count)
        out: list[dict[str, Any]] = []
        for entry_id, fields_ in reversed(entries):
            event = json.loads(fields_[b"event"])
            event["id"] = entry_id.decode()
            out.append(event)
        return out

    async def subscribe_events(self) -> AsyncIterator[dict[str, Any]]:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(EVENTS_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield json.loads(message["data"])
        finally:
            await pubsub.unsubscribe(EVENTS_CHANNEL)
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except aioredis.RedisError:
            return False


def config_as_dict(config: LiveConfig) -> dict[str, int]:
    return asdict(config)
