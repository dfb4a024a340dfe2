"""Cross-replica signals over Redis pub/sub: the daemon's one subscriber.

One subscriber connection per daemon listens to two channels, and fans them out
in-process (message path, culler, tenant gauge, admin watch streams):

- ``otm:events`` (Coordination.publish_event): every tenant change any replica
  makes. Here it invalidates the tenant cache and the endpoint cache, wakes
  local waiters (a replica waiting for another's wake result), and restarts
  delivery after ``resumed``.
- ``otm:work``: "tenant X has buffered updates" from a replica whose router
  could not deliver itself (another replica holds the delivery lease).

Pub/sub is lossy across reconnects, so on every (re)subscribe the
``on_reconnect`` hook runs (caches cleared, buffered work re-scanned).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import redis.asyncio as aioredis

from daemon.redis_keys import EVENTS_CHANNEL, WORK_CHANNEL

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], None]


class Subscription:
    """Events of one tenant, queued from the moment of subscribing."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await self.queue.get()
        except TimeoutError:
            return None


class TenantSignals:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._handlers: list[EventHandler] = []
        self._work_handlers: list[Callable[[str, str], None]] = []
        self._reconnect_handlers: list[Callable[[], None]] = []
        self.connected = asyncio.Event()

    @contextlib.contextmanager
    def subscribe(self, tenant_id: str) -> Iterator[Subscription]:
        """Subscribe *before* reading state, then wait: no event can slip between."""
        sub = Subscription()
        self._subs.setdefault(tenant_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(tenant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[tenant_id]

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Every tenant event from now on (all tenants), until the consumer stops."""
        sub = Subscription()
        self._all.add(sub)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self._all.discard(sub)

    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def on_work(self, handler: Callable[[str, str], None]) -> None:
        """``handler(tenant_id, origin)``."""
        self._work_handlers.append(handler)

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        self._reconnect_handlers.append(handler)

    def dispatch_event(self, event: dict[str, Any]) -> None:
        """Deliver one event locally (also used for this replica's own events)."""
        tenant_id = event.get("tenant_id")
        if not isinstance(tenant_id, str):
            return
        for handler in self._handlers:
            try:
                handler(tenant_id, event)
            except Exception:
                log.exception("event handler failed for %s", tenant_id)
        for sub in (*self._subs.get(tenant_id, ()), *self._all):
            sub.queue.put_nowait(event)

    def dispatch_work(self, payload: str) -> None:
        origin, _, tenant_id = payload.partition(" ")
        for handler in self._work_handlers:
            try:
                handler(tenant_id, origin)
            except Exception:
                log.exception("work handler failed for %s", tenant_id)

    async def listen(self, redis: aioredis.Redis) -> None:
        """Run forever: (re)subscribe, dispatch; back off on Redis errors."""
        delay = 0.1
        while True:
            pubsub = redis.pubsub()
            try:
                channels = {EVENTS_CHANNEL, WORK_CHANNEL}
                # In order: a cluster client listens on the node serving the first one's slot.
                await pubsub.subscribe(*sorted(channels))
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        # Connected once Redis confirmed both channels: an event published
                        # after that reaches us (a waiter may read state, then wait).
                        channels.discard(_text(message["channel"]))
                        if not channels:
                            self.connected.set()
                            for handler in self._reconnect_handlers:
                                handler()
                            delay = 0.1
                        continue
                    if message.get("type") != "message":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    data = message["data"]
                    data = data.decode() if isinstance(data, bytes) else str(data)
                    if channel == WORK_CHANNEL:
                        self.dispatch_work(data)
                    else:
                        try:
                            event = json.loads(data)
                        except ValueError:
                            continue
                        if isinstance(event, dict):
                            self.dispatch_event(event)
            except aioredis.RedisError as exc:
                self.connected.clear()
                log.warning("signals subscriber lost Redis (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                await _reread_cluster_slots(redis)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


async def _reread_cluster_slots(redis: aioredis.Redis) -> None:
    """On a Redis Cluster the subscriber's node is the one serving its channel's slot; after
    that node died, only a fresh slot map leads the next subscribe to its successor (this
    connection may be the client's only traffic, and nothing else would refresh the map)."""
    nodes = getattr(redis, "nodes_manager", None)
    if nodes is None:
        return
    try:
        await nodes.initialize()
    except (aioredis.RedisError, OSError) as exc:
        log.debug("cannot re-read the cluster's slots yet: %s", exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
