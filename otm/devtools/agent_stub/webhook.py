"""The Telegram webhook listener (``webhookHost:webhookPort``), separate from the gateway port.

Mirrors OpenClaw's ``extensions/telegram/src/webhook.ts`` as measured:

- ``/healthz`` (any method) answers ``ok``: the sign that Telegram init finished;
- only ``POST`` on exactly ``webhookPath`` (a query string does not match) reaches the handler,
  everything else is 404;
- the secret header must be present once and equal (constant time), else 401 with
  ``Connection: close``;
- bodies over 1 MiB are 413, a body slower than 30 s is 408, invalid JSON is 400;
- the update is spooled durably first and only then acked ``200`` with
  ``x-openclaw-delivery-accepted: durable``; a spool failure is 500 so Telegram redelivers;
- a repeated ``update_id`` is acked again and not processed twice.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time

from aiohttp import web

from daemon.telegram import SECRET_HEADER
from otm.devtools.agent_stub.config import TelegramConfig
from otm.devtools.agent_stub.runtime import RUNTIME_KEY, AgentRuntime

logger = logging.getLogger(__name__)

ACCEPTED_HEADER = "x-openclaw-delivery-accepted"
MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 30.0

TELEGRAM_KEY = web.AppKey("agent_telegram_config", TelegramConfig)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(BODY_TIMEOUT_S):
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def _secret_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.getall(SECRET_HEADER, [])
    return len(given) == 1 and hmac.compare_digest(given[0].encode(), expected.encode())


async def handle_any(request: web.Request) -> web.StreamResponse:
    telegram = request.app[TELEGRAM_KEY]
    if request.path == "/healthz":
        return web.Response(text="ok")
    if request.method != "POST" or request.path_qs != telegram.webhook_path:
        return web.Response(status=404, text="not found")
    if not _secret_ok(request, telegram.webhook_secret):
        return web.Response(status=401, text="unauthorized", headers={"Connection": "close"})
    try:
        raw = await _read_body(request)
    except _BodyTooLarge:
        return web.Response(status=413, text="payload too large", headers={"Connection": "close"})
    except TimeoutError:
        return web.Response(status=408, text="request timeout", headers={"Connection": "close"})
    try:
        update = json.loads(raw)
    except ValueError as e:
        return web.Response(status=400, text=str(e))
    update_id = update.get("update_id") if isinstance(update, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return web.Response(status=400, text="update_id missing")
    runtime: AgentRuntime = request.app[RUNTIME_KEY]
    try:
        is_new = await runtime.store.accept_update(update_id, update, time.time())
    except Exception:
        logger.exception("spool write failed for update %s", update_id)
        return web.Response(status=500, text="spool write failed")
    if is_new:
        await runtime.on_update_accepted(update_id, update)
    return web.Response(status=200, headers={ACCEPTED_HEADER: "durable"})


def create_webhook_app(runtime: AgentRuntime, telegram: TelegramConfig) -> web.Application:
    # client_max_size is above the limit so the handler, not aiohttp, decides on 413.
    app = web.Application(client_max_size=MAX_BODY_BYTES * 2)
    app[RUNTIME_KEY] = runtime
    app[TELEGRAM_KEY] = telegram
    app.router.add_route("*", "/{tail:.*}", handle_any)
    return app
