"""Minimal Telegram Bot API client (setWebhook, deleteWebhook, sendMessage).

The bot token is part of every URL, so errors are rebuilt without the URL:
aiohttp's own exception text would leak the token into logs.
"""

from __future__ import annotations

from typing import Any

import aiohttp

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
"""The header carrying a webhook's secret token (Telegram sets it; agents check it)."""
WEBHOOK_PATH = "/tg/{tenant_id}"
"""The router's webhook route for one tenant."""


def webhook_url(base_url: str, tenant_id: str) -> str:
    """The URL Telegram posts a tenant's updates to: the router at ``base_url``."""
    return base_url.rstrip("/") + WEBHOOK_PATH.format(tenant_id=tenant_id)


class BotApiError(Exception):
    pass


class BotApi:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, timeout_s: float = 10.0
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(self, token: str, method: str, payload: dict[str, Any]) -> Any:
        url = f"{self.base_url}/bot{token}/{method}"
        try:
            async with self.session.post(url, json=payload, timeout=self.timeout) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    raise BotApiError(f"{method}: HTTP {resp.status}, non-JSON answer") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BotApiError(f"{method}: {type(exc).__name__}") from None
        if not isinstance(body, dict) or not body.get("ok"):
            description = body.get("description") if isinstance(body, dict) else None
            raise BotApiError(f"{method}: {description or 'not ok'}")
        return body.get("result")

    async def set_webhook(self, token: str, *, url: str, secret: str) -> None:
        # drop_pending_updates=False: updates sent while we were unreachable still arrive.
        await self.call(
            token,
            "setWebhook",
            {"url": url, "secret_token": secret, "drop_pending_updates": False},
        )

    async def delete_webhook(self, token: str) -> None:
        await self.call(token, "deleteWebhook", {"drop_pending_updates": False})

    async def send_message(self, token: str, chat_id: int | str, text: str) -> None:
        await self.call(token, "sendMessage", {"chat_id": chat_id, "text": text})
