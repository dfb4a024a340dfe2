"""Admin endpoints of the message path: wake, sleep, logs, buffer, dead letters, simulate.

- POST /v1/tenants/{id}/wake            202 tenant (wake runs in the background);
                                        ?wait=true: 200 once running, 503 {"error"} if
                                        the wake failed; 409 (with or without wait) if
                                        the tenant is suspended or failed
- POST /v1/tenants/{id}/sleep           200 tenant once the agent stopped (final sync done)
- GET  /v1/tenants/{id}/logs            text/plain, streamed; ?follow=true&since_s=N&tail=N
                                        &timestamps=true&previous=true&container=gateway|
                                        restore|sync (follow spans sleep and wake)
- GET  /v1/tenants/{id}/buffer          {"pending": n, "dead_letters": m}
- GET  /v1/tenants/{id}/dead-letters    {"items": [{id, update_id, reason, attempts, at_ms,
                                        update}]}
- POST /v1/tenants/{id}/simulate        TESTING/DEMO ONLY: inject a Telegram update into the
                                        buffer as if it had come through the router (the
                                        webhook secret never leaves the daemon, so `otm chat`
                                        cannot post to /tg itself). Body {"text", "chat_id"?}
                                        or {"update": {...}}; 202 {"update_id", "chat_id",
                                        "buffered"}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from aiohttp import web

from daemon import app_keys as keys
from daemon.admin.audit import audited, record, tenant_changes
from daemon.admin.http import error_response, read_json_object
from daemon.admin.http import tenant_id_param as _tenant_id
from daemon.admin.log_follow import follow_across_runs
from daemon.app_keys import BUFFER, DELIVERY, WAKE
from daemon.log_options import LogOptions
from daemon.model import TenantStatus
from daemon.msgpath.buffer import chat_id_of
from daemon.msgpath.wake import StateNotSaved, WakeFailed, WakeRefused
from daemon.redis_keys import simulated_update_key

log = logging.getLogger(__name__)

SIMULATED_UPDATE_BASE = 1_000_000_000
"""Simulated update ids start here, far from the ids a test's real updates use."""
MAX_TAIL = 100_000
LOG_FOLLOWERS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("log_followers")
"""Request handlers following a tenant's log (`logs -f`), cancelled at shutdown."""
HELD = frozenset({TenantStatus.SUSPENDED, TenantStatus.FAILED, TenantStatus.DELETED})
"""Statuses a wake is refused in (an operator must resume the tenant first)."""


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _number(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
    if not math.isfinite(value):  # inf/nan: a timedelta overflow (was a 500)
        raise ValueError(f"{name} must be a finite number")
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


@audited("tenant.wake")
async def wake_tenant(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    registry = request.app[keys.REGISTRY]
    tenant = await registry.get(tenant_id)
    wake = request.app[WAKE]
    if tenant.status in HELD:
        # Said now, not after a 202 for a background wake that would be refused.
        reason = f": {tenant.status_reason}" if tenant.status_reason else ""
        return error_response(
            409,
            f"tenant {tenant_id!r} is {tenant.status.value}{reason} — not woken "
            f"(`otm tenant resume {tenant_id}` first)",
        )
    if not _flag(request, "wait"):
        request.app[keys.TASKS].spawn(
            _wake_in_background(wake, tenant_id), name=f"wake:{tenant_id}"
        )
        return web.json_response(tenant.public(), status=202)
    before = tenant
    try:
        tenant = await wake.wake(tenant_id)
    except WakeRefused as exc:
        return error_response(409, str(exc))
    except (WakeFailed, TimeoutError) as exc:
        return error_response(503, str(exc) or "wake timed out")
    record(request, changes=tenant_changes(before, tenant))
    return web.json_response(tenant.public())


async def _wake_in_background(wake: Any, tenant_id: str) -> None:
    try:
        await wake.wake(tenant_id)
    except (WakeRefused, WakeFailed, TimeoutError) as exc:
        log.warning("wake requested by operator did not complete: %s", exc)


@audited("tenant.sleep")
async def sleep_tenant(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    before = await request.app[keys.REGISTRY].get(tenant_id)
    try:
        tenant = await request.app[WAKE].sleep(tenant_id)
    except StateNotSaved as exc:
        return error_response(503, str(exc))
    record(request, changes=tenant_changes(before, tenant))
    return web.json_response(tenant.public())


async def tenant_logs(request: web.Request) -> web.StreamResponse:
    tenant_id = _tenant_id(request)
    await request.app[keys.REGISTRY].get(tenant_id)
    options = LogOptions(
        timestamps=_flag(request, "timestamps"),
        previous=_flag(request, "previous"),
        container=request.query.get("container") or "gateway",
    )
    follow = _flag(request, "follow") and not options.previous  # a finished run ends
    since_s = _number(request, "since_s")
    tail_raw = _number(request, "tail")
    runtime = request.app[keys.RUNTIME]
    with request.app[keys.SIGNALS].subscribe(tenant_id) as events:
        try:
            history = [
                line
                async for line in runtime.logs(
                    tenant_id, follow=False, since_s=since_s, options=options
                )
            ]
        except KeyError:
            if options.previous:
                return error_response(404, f"tenant {tenant_id!r} has no previous run")
            if not follow:
                return error_response(
                    404,
                    f"no logs for tenant {tenant_id!r} yet: its agent has not started "
                    f"(`otm logs {tenant_id} -f` waits for it)",
                )
            history = []  # -f waits for the first boot
        shown = history
        if tail_raw is not None:
            shown = history[max(len(history) - int(min(tail_raw, MAX_TAIL)), 0) :]
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        for line in shown:
            await response.write(_line(line))
        if follow:
            followers = request.app[LOG_FOLLOWERS]
            task = asyncio.current_task()
            assert task is not None
            followers.add(task)  # ended at shutdown: a follower never holds the daemon up

            async def write(line: str) -> None:
                await response.write(_line(line))

            def client_gone() -> bool:
                return request.transport is None or request.transport.is_closing()

            try:
                await follow_across_runs(
                    runtime,
                    events,
                    tenant_id,
                    since_s=since_s,
                    options=options,
                    sent=history,
                    write=write,
                    client_gone=client_gone,
                )
            except ConnectionResetError:
                return response  # the client went away
            finally:
                followers.discard(task)
            return response
    await response.write_eof()
    return response


async def _end_log_followers(app: web.Application) -> None:
    followers = app[LOG_FOLLOWERS]
    for task in followers.copy():
        task.cancel()


def _line(line: str) -> bytes:
    return (line.rstrip("\n") + "\n").encode()


async def tenant_buffer(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    await request.app[keys.REGISTRY].get(tenant_id)
    buffer = request.app[BUFFER]
    return web.json_response(
        {
            "pending": await buffer.length(tenant_id),
            "dead_letters": await buffer.dead_count(tenant_id),
        }
    )


async def dead_letters(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    await request.app[keys.REGISTRY].get(tenant_id)
    items = await request.app[BUFFER].dead_letters(tenant_id)
    return web.json_response({"items": [item.as_dict() for item in items]})


@audited("tenant.simulate")
async def simulate_update(request: web.Request) -> web.Response:
    """Testing/demo only (see module doc)."""
    tenant_id = _tenant_id(request)
    await request.app[keys.REGISTRY].get(tenant_id)
    body = await read_json_object(request)
    update = body.get("update")
    if update is not None:
        if not isinstance(update, dict):
            raise ValueError("update must be a Telegram Update object")
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise ValueError("update.update_id must be an integer")
        if not -(1 << 63) <= update_id < (1 << 63):
            raise ValueError("update.update_id must fit in 64 bits")
    else:
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise ValueError("text is required (or a full update)")
        chat_id = body.get("chat_id", 1)
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise ValueError("chat_id must be an integer")
        redis = request.app[keys.REDIS]
        update_id = SIMULATED_UPDATE_BASE + int(await redis.incr(simulated_update_key(tenant_id)))
        update = simulated_text_update(update_id, chat_id, text)
    raw = json.dumps(update).encode()
    result = await request.app[BUFFER].append(tenant_id, update_id, raw)
    if result.added:
        request.app[keys.METRICS].updates_buffered.inc()
        request.app[DELIVERY].notify(tenant_id)
    return web.json_response(
        {"update_id": update_id, "chat_id": chat_id_of(update), "buffered": result.added},
        status=202,
    )


def simulated_text_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": "otm chat"},
            "chat": {"id": chat_id, "type": "private", "first_name": "otm chat"},
            "date": int(time.time()),
            "text": text,
        },
    }


def setup_routes(app: web.Application) -> None:
    followers: set[asyncio.Task[Any]] = set()
    app[LOG_FOLLOWERS] = followers
    app.on_shutdown.append(_end_log_followers)
    app.router.add_post("/v1/tenants/{tenant_id}/wake", wake_tenant)
    app.router.add_post("/v1/tenants/{tenant_id}/sleep", sleep_tenant)
    app.router.add_get("/v1/tenants/{tenant_id}/logs", tenant_logs)
    app.router.add_get("/v1/tenants/{tenant_id}/buffer", tenant_buffer)
    app.router.add_get("/v1/tenants/{tenant_id}/dead-letters", dead_letters)
    app.router.add_post("/v1/tenants/{tenant_id}/simulate", simulate_update)
