"""Telegram webhook ingress: ``POST /tg/{tenant_id}`` and ``GET /healthz``.

Unlike the original router (which always answered 200 and forwarded
fire-and-forget), an update is answered 200 only once it is durably buffered;
anything else gets a status that tells Telegram the truth:

- 400 invalid tenant id, malformed JSON, no integer ``update_id``
- 404 unknown tenant (nothing is woken, nothing buffered)
- 401 wrong/missing ``X-Telegram-Bot-Api-Secret-Token`` (constant-time compare)
- 413 body larger than ``settings.max_body_bytes``
- 503 the buffer (Redis) is unavailable: Telegram retries later
- 200 buffered (or a retry of an update already buffered/delivered)
"""

from __future__ import annotations

import hmac
import json
import logging

import redis.asyncio as aioredis
from aiohttp import web

from daemon import keys
from daemon.keys import BUFFER, DELIVERY, PARENT, TENANT_CACHE
from daemon.model import InvalidTenantId, validate_tenant_id
from daemon.telegram import SECRET_HEADER, WEBHOOK_PATH

log = logging.getLogger(__name__)

def _answer(request: web.Request, status: int, text: str) -> web.Response:
    request.app[PARENT][keys.METRICS].webhook_requests.labels(status=str(status)).inc()
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
    body = await _read_limited(request, settings.max_body_bytes)
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
    try:
        result = await parent[BUFFER].append(tenant_id, update_id, body)
    except aioredis.RedisError as exc:
        log.error("cannot buffer update for %s: %s", tenant_id, exc)
        return _answer(request, 503, "buffer unavailable")
    metrics = parent[keys.METRICS]
    if result.added:
        metrics.updates_buffered.inc()
        metrics.buffered_messages.labels(tenant=tenant_id).set(result.length)
        parent[DELIVERY].notify(tenant_id)
    else:
        metrics.updates_duplicate.inc()
    return _answer(request, 200, "ok")


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` (chunked bodies have no length)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_router_app(parent: web.Application) -> web.Application:
    # The handler enforces the body limit itself (413 before buffering anything).
    app = web.Application(client_max_size=parent[keys.SETTINGS].max_body_bytes + 1)
    app[PARENT] = parent
    app.router.add_post(WEBHOOK_PATH, handle_update)
    app.router.add_get("/healthz", healthz)
    return app
