"""`GET /v1/watch` (server-sent tenant changes) and `GET /v1/status` (one-glance health).

The daemon's one Redis subscription (TenantSignals) feeds the hub, which fans tenant
events out to every open watch stream. Each stream holds at most ``MAX_PENDING``
distinct tenant ids; a client that falls further behind is sent a fresh snapshot instead, so a slow
reader never grows the daemon's memory. Events only name the tenant: the stream
re-reads the record from the registry, so coalescing repeated events is exact.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from daemon import app_keys as keys
from daemon.admin.http import matches_labels, parse_label_selector
from daemon.app_keys import STARTED_AT, WATCH_HUB
from daemon.coordination import config_as_dict
from daemon.model import Tenant, TenantNotFound, TenantStatus
from daemon.msgpath.pubsub import TenantSignals
from daemon.ports import Registry

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_PENDING = 1000
SUBSCRIBE_TIMEOUT_S = 5.0
CHECK_TIMEOUT_S = 3.0
WRITE_TIMEOUT_S = 30.0
"""A client that accepts no data for this long is dropped (it holds a handler)."""
CLOSE_GRACE_S = 2.0


class WatchStream:
    """Pending work of one watch connection: tenant ids to re-read, or a resync."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.pending: dict[str, None] = {}  # ordered set: first change first
        self.behind = False
        self.closed = False
        self.synced = False
        """Set once the first snapshot went out (what `watchers` in /v1/status counts)."""
        self.handler: asyncio.Task[Any] | None = None
        """The request handler's task, cancelled if it cannot finish at shutdown."""
        self.finished = asyncio.Event()
        self._wakeup = asyncio.Event()

    def offer(self, tenant_id: str) -> None:
        if self.behind or tenant_id in self.pending:
            return
        if len(self.pending) >= self.max_pending:
            self.pending.clear()
            self.behind = True
        else:
            self.pending[tenant_id] = None
        self._wakeup.set()

    def fall_behind(self) -> None:
        """Events may have been missed (e.g. Redis reconnect): resync with a snapshot."""
        self.pending.clear()
        self.behind = True
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def wait(self, timeout: float) -> bool:
        """True when there is something to do (or the stream closed), False on timeout."""
        if not (self.pending or self.behind or self.closed):
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return False
        return True

    def take(self) -> list[str]:
        ids = list(self.pending)
        self.pending.clear()
        return ids


class WatchHub:
    """Fans the daemon's one subscription to tenant events (TenantSignals) out to every
    open watch stream."""

    def __init__(self, signals: TenantSignals) -> None:
        self.signals = signals
        self.streams: set[WatchStream] = set()
        signals.on_event(self._on_event)
        # Streams attached before a lost subscription may have missed changes:
        # resync them once changes flow again.
        signals.on_reconnect(self._resync)

    async def attach(self, stream: WatchStream) -> None:
        """Register ``stream`` once events are flowing (TimeoutError if they do not):
        every change published after this returns reaches the stream."""
        await asyncio.wait_for(self.signals.connected.wait(), SUBSCRIBE_TIMEOUT_S)
        self.streams.add(stream)

    def detach(self, stream: WatchStream) -> None:
        self.streams.discard(stream)
        stream.finished.set()

    async def close(self) -> None:
        streams = list(self.streams)
        for stream in streams:
            stream.close()
        if streams:
            # A handler blocked writing to a client that stopped reading would hold
            # shutdown up: give the streams a moment to end, then cancel the rest.
            finishing = asyncio.gather(*(s.finished.wait() for s in streams))
            try:
                await asyncio.wait_for(finishing, CLOSE_GRACE_S)
            except TimeoutError:
                for stream in streams:
                    if not stream.finished.is_set() and stream.handler is not None:
                        stream.handler.cancel()

    def _resync(self) -> None:
        for stream in self.streams:
            stream.fall_behind()

    def _on_event(self, tenant_id: str, event: dict[str, Any]) -> None:
        for stream in self.streams:
            stream.offer(tenant_id)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def watch(request: web.Request) -> web.StreamResponse:
    status_param = request.query.get("status")
    try:
        status = TenantStatus(status_param) if status_param else None
    except ValueError:
        raise ValueError(f"unknown status {status_param!r}") from None
    selector = parse_label_selector(request.query.get("selector", ""))

    def visible(tenant: Tenant) -> bool:
        return (status is None or tenant.status == status) and matches_labels(
            tenant.labels, selector
        )

    registry = request.app[keys.REGISTRY]
    hub = request.app[WATCH_HUB]
    stream = WatchStream(MAX_PENDING)
    stream.handler = asyncio.current_task()
    try:
        await hub.attach(stream)
    except TimeoutError:
        return web.json_response({"error": "event stream unavailable (Redis)"}, status=503)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    shown: set[str] = set()  # ids the client has on screen, so leaving the filter is a delete

    async def snapshot() -> bytes:
        # Changes queued meanwhile stay queued: re-sending them is harmless, losing is not.
        items = [t for t in await registry.list(status=status) if visible(t)]
        shown.clear()
        shown.update(t.tenant_id for t in items)
        return _sse("snapshot", {"items": [t.public() for t in items]})

    async def send(payload: bytes) -> None:
        await asyncio.wait_for(resp.write(payload), WRITE_TIMEOUT_S)

    try:
        await resp.prepare(request)
        await send(await snapshot())
        stream.synced = True
        while not stream.closed:
            if not await stream.wait(KEEPALIVE_S):
                await send(b": keepalive\n\n")
                continue
            if stream.closed:
                break
            if stream.behind:
                stream.behind = False  # changes from now on queue up again
                await send(await snapshot())
                continue
            for tenant_id in stream.take():
                change = await _change(registry, tenant_id, visible, shown)
                if change is not None:
                    await send(_sse("tenant", change))
    except ConnectionResetError:
        pass  # the client went away
    except TimeoutError:
        log.info("watch: dropping a client that stopped reading")
        if request.transport is not None:
            request.transport.abort()  # or finishing the response would block too
    except Exception:
        # Headers are out, so no error response: end the stream; clients re-watch.
        log.exception("watch stream failed")
    finally:
        hub.detach(stream)
    return resp


async def _change(
    registry: Registry, tenant_id: str, visible: Callable[[Tenant], bool], shown: set[str]
) -> dict[str, Any] | None:
    """The event for a changed tenant, or None if the client need not hear of it."""
    try:
        tenant = await registry.get(tenant_id)
    except TenantNotFound:
        tenant_view = None
    else:
        tenant_view = tenant.public() if visible(tenant) else None
    if tenant_view is None:
        if tenant_id not in shown:
            return None
        shown.discard(tenant_id)
        return {"type": "delete", "tenant": {"tenant_id": tenant_id, "status": "deleted"}}
    shown.add(tenant_id)
    return {"type": "upsert", "tenant": tenant_view}


# -- status ----------------------------------------------------------------------
async def _bounded(coro: Any) -> tuple[bool, Any]:
    try:
        return True, await asyncio.wait_for(coro, CHECK_TIMEOUT_S)
    except Exception as exc:
        log.warning("status check failed: %s", exc)
        return False, exc


def _leader(app: web.Application) -> bool:
    """Whether this replica leads."""
    return app[keys.LEADER].is_leader


def _version() -> str | None:
    try:
        return importlib.metadata.version("otm")
    except importlib.metadata.PackageNotFoundError:
        return None


async def status(request: web.Request) -> web.Response:
    app = request.app
    settings = app[keys.SETTINGS]
    coordination = app[keys.COORDINATION]
    runtime = app[keys.RUNTIME]

    redis_ok, _ = await _bounded(coordination.redis.ping())
    # Counted by the registry: listing 100,000 records took longer than the check's bound.
    registry_ok, counts = await _bounded(app[keys.REGISTRY].count_by_status())
    by_status = {s.value: n for s, n in counts.items()} if registry_ok else {}
    config_ok, config = await _bounded(coordination.get_config())
    store_ok, store_problem = await _bounded(app[keys.STATE_STORE].write_problem())
    runtime_ok, listed = await _bounded(runtime.list())
    instances: list[Any] = listed if runtime_ok else []
    warm = sum(1 for i in instances if getattr(i, "warm", False) and i.tenant_id is None)
    pool_status = getattr(getattr(runtime, "warm_pool", None), "status", None)
    body = {
        "daemon": {
            "version": _version(),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - app[STARTED_AT], 1),
            "leader": _leader(app),
            "watchers": sum(1 for s in app[WATCH_HUB].streams if s.synced),
            # Not secret; `otm chat` reads the fake Bot API's record from here.
            "telegram_api_base": settings.telegram_api_base,
            "router_url": app.get(keys.ROUTER_URL),
        },
        "redis": {"ok": redis_ok},
        "registry": {
            "kind": settings.registry,
            "ok": registry_ok,
            "tenants_by_status": dict(sorted(by_status.items())),
        },
        "state_store": {
            "kind": settings.state_store,
            "ok": store_ok and not store_problem,
            "reason": store_problem if store_ok else "no answer",
        },
        "runtime": {
            "kind": settings.runtime,
            "ok": runtime_ok,
            "instances": len(instances) if runtime_ok else None,
        },
        "warm_pool": {
            "target": config.warm_pool_target if config_ok else None,
            "size": warm if runtime_ok else None,
            # The local pool reports ready (claimable) and booting gateways itself; the
            # target shown stays the live config's.
            **{
                k: v
                for k, v in (pool_status() if callable(pool_status) else {}).items()
                if k != "target"
            },
        },
        "config": config_as_dict(config) if config_ok else None,
        "wakes": await _wake_admission(app),
        "rollout": await _rollout(app),
    }
    return web.json_response(body)


async def _rollout(app: web.Application) -> dict[str, Any] | None:
    """The current or last image rollout, in brief (`otm rollout status` has it all)."""
    rollouts = app.get(keys.ROLLOUTS)
    if rollouts is None:
        return None
    ok, rollout = await _bounded(rollouts.store.get())
    if not ok:
        return {"ok": False}
    if rollout is None:
        return None
    return {
        "image": rollout.image,
        "status": rollout.status.value,
        "wave": rollout.wave + 1,
        "waves": len(rollout.steps),
        "fraction": rollout.fraction,
        "reason": rollout.reason,
    }


async def _wake_admission(app: web.Application) -> dict[str, Any] | None:
    """Wakes in progress and queued (daemon/msgpath/wake_admission.py), cluster-wide."""
    admission = getattr(app.get(keys.WAKE), "admission", None)
    if admission is None:
        return None
    ok, snapshot = await _bounded(admission.snapshot())
    if not ok:
        return {"ok": False}
    return {
        "ok": True,
        "cap": snapshot.cap,
        "in_progress": len(snapshot.in_progress),
        "queued": len(snapshot.queued),
    }


async def _close_streams(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open handlers: ending the streams
    # here lets the daemon exit promptly instead of waiting out the shutdown timeout.
    await app[WATCH_HUB].close()


def setup_routes(app: web.Application) -> None:
    app[STARTED_AT] = time.monotonic()
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/v1/watch", watch)
    app.router.add_get("/v1/status", status)
