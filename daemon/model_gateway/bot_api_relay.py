"""The Bot API relay: the ``apiRoot`` of the agents of tenants that receive by long polling.

An agent (OpenClaw, and the stand-in) calls ``setWebhook`` with its ``webhookUrl`` at every
start, and a non-retryable refusal shuts its Telegram webhook listener for good. A polling
tenant has no public HTTPS URL, so Telegram refuses that call ("An HTTPS URL must be provided
for webhook"); and a URL Telegram took would stop the daemon's ``getUpdates`` (409 while a
webhook is set). So a polling tenant's agent is rendered with ``apiRoot`` pointing here, on the
agent-facing listener it already reaches for models (tenant pods may reach its port):

- ``setWebhook``/``deleteWebhook`` are answered ``true`` here and ``getWebhookInfo`` with no
  webhook (what Telegram reports once the daemon deleted it): none reaches Telegram;
- ``getUpdates`` is refused with Telegram's 409 for a second consumer: the daemon's poller is
  the bot's only one;
- every other method (``/bot<token>/<method>``) and file download
  (``/file/bot<token>/<path>``) goes to ``telegram_api_base``, bodies streamed both ways,
  status, content type and body unchanged.

Only for the tenant named in the path (``/tenants/<id>/telegram``), with that tenant's own bot
token (constant-time compare, through the tenant cache): anything else is 401 without an
upstream call, so the relay is never an open proxy. Tokens are in every path: the listener has
no access log and upstream failures are logged by type, never with the URL.
"""

from __future__ import annotations

import hmac
import logging
from typing import Protocol

import aiohttp
from aiohttp import web
from yarl import URL

from daemon.model import InvalidTenantId, TenantStatus, validate_tenant_id
from daemon.telegram import NO_WEBHOOK_INFO, bot_api_error, bot_api_result

log = logging.getLogger(__name__)

RELAY_PREFIX = "/tenants/{tenant_id}/telegram"
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
"""No total: an upload or a file download may take long; a stalled upstream may not."""
SECOND_CONSUMER = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
REQUEST_HEADERS = ("Content-Type", "Content-Length", "Accept")
RESPONSE_HEADERS = ("Content-Type", "Content-Length", "Content-Disposition", "Retry-After")
REFUSED_STATUSES = frozenset({TenantStatus.SUSPENDED, TenantStatus.DELETED})
"""A suspended tenant's agent is stopped; nothing may speak for its bot meanwhile."""


def relay_api_root(agent_gateway_url: str, tenant_id: str) -> str:
    """The ``apiRoot`` of ``tenant_id``'s agent: the relay on the listener agents reach at
    ``agent_gateway_url`` (the model gateway's URL, ``.../v1``)."""
    root = agent_gateway_url.rstrip("/").removesuffix("/v1")
    return root + RELAY_PREFIX.format(tenant_id=tenant_id)


class RelayTenant(Protocol):
    @property
    def status(self) -> TenantStatus: ...

    @property
    def bot_token(self) -> bytes: ...


class TenantLookup(Protocol):
    async def get(self, tenant_id: str) -> RelayTenant | None: ...


class BotApiRelay:
    def __init__(
        self, *, session: aiohttp.ClientSession, upstream_base: str, tenants: TenantLookup
    ) -> None:
        self.session = session
        self.upstream_base = upstream_base.rstrip("/")
        self.tenants = tenants

    async def refusal(self, request: web.Request) -> web.Response | None:
        """None when the path's tenant exists, may speak, and the token is its bot's."""
        tenant_id, token = request.match_info["tenant_id"], request.match_info["token"]
        try:
            validate_tenant_id(tenant_id)
            tenant = await self.tenants.get(tenant_id)
        except InvalidTenantId:
            tenant = None
        except Exception as exc:  # registry down, lookups throttled: the agent retries
            log.warning("Bot API relay: tenant %s lookup failed: %s", tenant_id, exc)
            return bot_api_error(503, "Service Unavailable")
        if (
            tenant is None
            or tenant.status in REFUSED_STATUSES
            or not tenant.bot_token
            or not hmac.compare_digest(tenant.bot_token, token.encode())
        ):
            return bot_api_error(401, "Unauthorized")
        return None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """The call as it came, to the same path under ``upstream_base``; its answer back."""
        tenant_id = request.match_info["tenant_id"]
        prefix = RELAY_PREFIX.format(tenant_id=tenant_id)
        path = request.rel_url.raw_path.removeprefix(prefix)
        query = request.rel_url.raw_query_string
        url = URL(self.upstream_base + path + (f"?{query}" if query else ""), encoded=True)
        headers = {name: value for name in REQUEST_HEADERS if (value := request.headers.get(name))}
        # Compressed answers would be decompressed on the way: ask for none.
        headers["Accept-Encoding"] = "identity"
        what = request.match_info.get("method", "file")
        response: web.StreamResponse | None = None
        try:
            async with self.session.request(
                request.method,
                url,
                data=request.content if request.body_exists else None,
                headers=headers,
                timeout=UPSTREAM_TIMEOUT,
                allow_redirects=False,
            ) as upstream:
                response = web.StreamResponse(
                    status=upstream.status,
                    headers={
                        name: value
                        for name in RESPONSE_HEADERS
                        if (value := upstream.headers.get(name))
                    },
                )
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            # By type only: aiohttp's text of the error holds the URL, hence the token.
            log.warning(
                "Bot API relay: %s of tenant %s failed upstream: %s",
                what,
                tenant_id,
                type(exc).__name__,
            )
            if response is None:
                return bot_api_error(502, "Bad Gateway")
            # Mid-body: the agent must see a broken answer, not a short one.
            if request.transport is not None:
                request.transport.abort()
            return response


RELAY = web.AppKey("bot_api_relay", BotApiRelay)


async def handle_method(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY]
    if (refused := await relay.refusal(request)) is not None:
        return refused
    method = request.match_info["method"].lower()  # Telegram's method names ignore case
    if method in ("setwebhook", "deletewebhook"):
        return bot_api_result(True)
    if method == "getwebhookinfo":
        return bot_api_result(NO_WEBHOOK_INFO)
    if method == "getupdates":
        return bot_api_error(409, SECOND_CONSUMER)
    return await relay.forward(request)


async def handle_file(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY]
    if (refused := await relay.refusal(request)) is not None:
        return refused
    return await relay.forward(request)


def add_relay_routes(app: web.Application, relay: BotApiRelay) -> None:
    app[RELAY] = relay
    app.router.add_route("*", RELAY_PREFIX + "/bot{token}/{method}", handle_method)
    app.router.add_get(RELAY_PREFIX + "/file/bot{token}/{path:.+}", handle_file)
