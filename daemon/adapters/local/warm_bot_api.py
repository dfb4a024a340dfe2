"""The Bot API a warm gateway's placeholder Telegram account talks to, on 127.0.0.1.

A gateway booted with a Telegram account running binds ~1 s faster (measured: the bind is a
channel restart, not a plugin reload) but its account calls ``getMe``/``setWebhook`` at boot.
With the placeholder token those calls must never reach api.telegram.org, so the local warm
pool points the warm config's ``apiRoot`` here; the bind's config rewrite points the tenant's
account at the real Bot API. Only ``PLACEHOLDER_BOT_TOKEN`` is answered (others: 401), every
method with ``true`` except ``getMe`` (a bot identity) and ``getWebhookInfo``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.agent.openclaw_config import PLACEHOLDER_BOT_TOKEN
from daemon.telegram import NO_WEBHOOK_INFO, bot_api_error, bot_api_result

PLACEHOLDER_BOT: dict[str, Any] = {
    "id": int(PLACEHOLDER_BOT_TOKEN.split(":", 1)[0]),
    "is_bot": True,
    "first_name": "otm warm gateway",
    "username": "otm_warm_placeholder_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


async def _handle(request: web.Request) -> web.Response:
    if request.match_info["token"] != PLACEHOLDER_BOT_TOKEN:
        return bot_api_error(401, "Unauthorized")
    await request.read()
    method = request.match_info["method"].lower()
    result: Any = True
    if method == "getme":
        result = PLACEHOLDER_BOT
    elif method == "getwebhookinfo":
        result = NO_WEBHOOK_INFO
    return bot_api_result(result)


class PlaceholderBotApi:
    """``async with PlaceholderBotApi() as api: api.base_url``."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", _handle)
        self._runner = web.AppRunner(app, access_log=None)
        self.base_url = ""

    async def __aenter__(self) -> PlaceholderBotApi:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
