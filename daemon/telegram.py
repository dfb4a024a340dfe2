"""Minimal Telegram Bot API client (setWebhook, deleteWebhook, getUpdates, sendMessage), and
the answers of the Bot APIs the daemon serves its agents (the warm pool's placeholder API, the
polling tenants' relay).

The bot token is part of every URL, so errors are rebuilt without the URL:
aiohttp's own exception text would leak the token into logs.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
"""The header carrying a webhook's secret token (Telegram sets it; agents check it)."""
WEBHOOK_PATH = "/tg/{tenant_id}"
"""The router's webhook route for one tenant."""


NO_WEBHOOK_INFO: dict[str, Any] = {
    "url": "",
    "has_custom_certificate": False,
    "pending_update_count": 0,
}
"""``getWebhookInfo`` of a bot without a webhook (as Telegram reports it after deleteWebhook)."""


def bot_api_result(result: Any) -> web.Response:
    """A successful Bot API answer, ``{"ok": true, "result": ...}``."""
    return web.json_response({"ok": True, "result": result})


def bot_api_error(status: int, description: str) -> web.Response:
    """A Bot API error answer, as Telegram sends it (``error_code`` is the HTTP status)."""
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )


def webhook_url(base_url: str, tenant_id: str) -> str:
    """The URL Telegram posts a tenant's updates to: the router at ``base_url``."""
    return base_url.rstrip("/") + WEBHOOK_PATH.format(tenant_id=tenant_id)


async def read_body_limited(request: web.Request, limit: int) -> bytes | None:
    """A webhook request's body, or None once it exceeds ``limit`` bytes (chunked bodies
    have no Content-Length, so the limit is enforced while reading)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class BotApiError(Exception):
    """A failed Bot API call. ``error_code`` is Telegram's (e.g. 401 bad token, 409 conflict),
    None when no answer came; ``description`` is Telegram's text (never holds the token)."""

    def __init__(
        self, message: str, *, error_code: int | None = None, description: str = ""
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.description = description


class BotApi:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, timeout_s: float = 10.0
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(
        self,
        token: str,
        method: str,
        payload: dict[str, Any],
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        url = f"{self.base_url}/bot{token}/{method}"
        try:
            async with self.session.post(
                url, json=payload, timeout=timeout or self.timeout
            ) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    raise BotApiError(
                        f"{method}: HTTP {resp.status}, non-JSON answer", error_code=resp.status
                    ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BotApiError(f"{method}: {type(exc).__name__}") from None
        if not isinstance(body, dict) or not body.get("ok"):
            description = body.get("description") if isinstance(body, dict) else None
            code = body.get("error_code") if isinstance(body, dict) else None
            raise BotApiError(
                f"{method}: {description or 'not ok'}",
                error_code=code if isinstance(code, int) else None,
                description=str(description or ""),
            )
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

    async def get_updates(
        self, token: str, *, offset: int | None, timeout_s: int, limit: int = 100
    ) -> list[Any]:
        """One long poll: updates from ``offset`` on (which confirms every update below it).
        The HTTP timeout outlasts Telegram's ``timeout_s`` so an empty poll is not an error."""
        payload: dict[str, Any] = {"timeout": timeout_s, "limit": limit}
        if offset is not None:
            payload["offset"] = offset
        result = await self.call(
            token,
            "getUpdates",
            payload,
            timeout=aiohttp.ClientTimeout(total=timeout_s + 15, sock_connect=10),
        )
        if not isinstance(result, list):
            raise BotApiError("getUpdates: result is not a list")
        return result

    async def send_message(self, token: str, chat_id: int | str, text: str) -> None:
        await self.call(token, "sendMessage", {"chat_id": chat_id, "text": text})
