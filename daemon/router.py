"""Telegram webhook ingress: ``POST /tg/{tenant_id}`` and ``GET /healthz``.

Unlike the original router (which always answered 200 and forwarded
fire-and-forget), an update is answered 200 only once it is durably buffered;
anything else gets a status that tells Telegram the truth:

- 400 invalid tenant id, malformed JSON, no integer ``update_id`` (or not an int64)
- 404 unknown tenant (nothing is woken, nothing buffered)
- 401 wrong/missing ``X-Telegram-Bot-Api-Secret-Token`` (constant-time compare)
- 413 body larger than ``settings.max_body_bytes``
- 408 body not received within ``settings.router_body_timeout_s``
- 429 (+ ``Retry-After``) over the tenant's ``inbound_messages_per_min``
- 503 the buffer (Redis) is unavailable: Telegram retries later
- 200 buffered (or a retry of an update already buffered/delivered)
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from daemon import app_keys as keys
from daemon.app_keys import BUFFER, DELIVERY, PARENT, TENANT_CACHE
from daemon.model import InvalidTenantId, validate_tenant_id
from daemon.model_gateway.limits import MinuteWindow
from daemon.msgpath.tenant_cache import LookupThrottled
from daemon.telegram import SECRET_HEADER, WEBHOOK_PATH, read_body_limited

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
"""Unauthenticated liveness of the router listener (the ALB health check uses it)."""

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
INBOUND_LIMIT = web.AppKey("inbound_limit", MinuteWindow)


def _answer(request: web.Request, status: int, text: str) -> web.Response:
    request.app[PARENT][keys.METRICS].count_webhook_answer(status)
    return web.Response(status=status, text=text)


async def handle_update(request: web.Request) -> web.Response:
    parent = request.app[PARENT]
    settings = parent[keys.SETTINGS]
    try:
        tenant_id = validate_tenant_id(request.match_info["tenant_id"])
    except InvalidTenantId:
        return _answer(request, 400, "invalid tenant id")
    try:
        info = await parent[TENANT_CACHE].get(tenant_id)
    except LookupThrottled:  # a flood of unknown ids: no log line per request
        return _answer(request, 503, "temporarily unavailable")
    except Exception as exc:  # registry down: let Telegram retry rather than lose it
        log.warning("tenant lookup for %s failed: %s", tenant_id, exc)
        return _answer(request, 503, "temporarily unavailable")
    if info is None:
        return _answer(request, 404, "unknown tenant")
    given = request.headers.getall(SECRET_HEADER, [])
    if len(given) != 1 or not hmac.compare_digest(given[0].encode(), info.webhook_secret):
        return _answer(request, 401, "unauthorized")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _answer(request, 413, "payload too large")
    try:
        wait = await request.app[INBOUND_LIMIT].take(tenant_id)
    except aioredis.RedisError as exc:
        log.error("cannot check the inbound limit of %s: %s", tenant_id, exc)
        return _answer(request, 503, "buffer unavailable")
    if wait is not None:
        # Telegram keeps the update and retries: nothing lost, nothing buffered beyond the limit.
        response = _answer(request, 429, "too many requests")
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        async with asyncio.timeout(settings.router_body_timeout_s):
            body = await read_body_limited(request, settings.max_body_bytes)
    except TimeoutError:  # a trickled body must not hold the connection forever
        return _answer(request, 408, "request timeout")
    if body is None:
        return _answer(request, 413, "payload too large")
    try:
        # Strict UTF-8 (RFC 8259): json.loads(bytes) would also take UTF-16/32, which
        # the agent then cannot parse. Deep nesting raises RecursionError.
        update = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _answer(request, 400, "malformed JSON")
    update_id = update.get("update_id") if isinstance(update, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return _answer(request, 400, "update_id missing")
    if not INT64_MIN <= update_id <= INT64_MAX:
        # Telegram's ids are int64; a 4,000-digit id used to block the tenant's queue.
        return _answer(request, 400, "update_id out of range")
    try:
        result = await parent[BUFFER].append(tenant_id, update_id, body)
    except aioredis.RedisError as exc:
        log.error("cannot buffer update for %s: %s", tenant_id, exc)
        return _answer(request, 503, "buffer unavailable")
    metrics = parent[keys.METRICS]
    if result.added:
        metrics.updates_buffered.inc()
        metrics.set_buffered(tenant_id, result.length)
        parent[DELIVERY].notify(tenant_id, length=result.length, appended=result.update)
    else:
        metrics.updates_duplicate.inc()
    return _answer(request, 200, "ok")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_router_app(parent: web.Application, middlewares: Iterable[Any] = ()) -> web.Application:
    # The handler enforces the body limit itself (413 before buffering anything).
    app = web.Application(
        client_max_size=parent[keys.SETTINGS].max_body_bytes + 1, middlewares=middlewares
    )
    app[PARENT] = parent
    app[INBOUND_LIMIT] = MinuteWindow(
        parent[keys.REDIS], "inbound", parent[keys.SETTINGS].inbound_messages_per_min
    )
    app.router.add_post(WEBHOOK_PATH, handle_update)
    app.router.add_get(HEALTH_PATH, healthz)
    return app
