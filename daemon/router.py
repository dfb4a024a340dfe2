"""Telegram webhook ingress: POST /tg/{tenant_id}. (Filled in by the message-path work.)"""

from __future__ import annotations

from aiohttp import web


def create_router_app(parent: web.Application) -> web.Application:
    app = web.Application()
    return app
