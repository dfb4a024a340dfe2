"""The model gateway's aiohttp app and the cleanup context of its listener.

A third listener of the daemon (after the admin API and the Telegram router), not a separate
process: it needs the same registry (key checks), Redis (usage, limits) and metrics, and is
as available as the daemon's replicas. A port of its own lets the tenants' NetworkPolicy
admit exactly this port and nothing else of the daemon (docs/model-gateway.md). The same
listener serves the Bot API relay of polling tenants (bot_api_relay.py), so it runs even
without a model upstream.

``POST /v1/chat/completions`` (streamed SSE or not) and ``GET /v1/models``, OpenAI-compatible.
Every request: key → tenant (401 unless it is the tenant's current key: suspend rotates it,
delete removes it) → limits (429 + ``Retry-After``) → upstream → usage counted from the
upstream's own report.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from daemon import app_keys as keys
from daemon.metrics import Metrics
from daemon.model import TenantNotFound
from daemon.model_gateway.bot_api_relay import BotApiRelay, add_relay_routes
from daemon.model_gateway.keys import ModelKeys, shared_key_secret
from daemon.model_gateway.limits import ModelLimits
from daemon.model_gateway.metrics import GatewayMetrics
from daemon.model_gateway.upstream import StreamResult, Upstream, Usage, error_body
from daemon.model_gateway.usage import UsageStore
from daemon.model_pricing import cost_usd, parse_prices
from daemon.ports import Registry
from daemon.settings import Settings

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 << 20
"""Agents resend the whole conversation; a long one with tool output is megabytes."""


@dataclasses.dataclass(eq=False, kw_only=True)
class Gateway:
    settings: Settings
    registry: Registry
    model_keys: ModelKeys
    usage: UsageStore
    limits: ModelLimits
    upstream: Upstream
    metrics: GatewayMetrics

    def __post_init__(self) -> None:
        self.prices = parse_prices(self.settings.model_prices)

    async def authenticate(self, request: web.Request) -> str | None:
        """The tenant whose current key the request carries, or None."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        parsed = self.model_keys.parse(given.strip())
        if parsed is None:
            return None
        try:
            tenant = await self.registry.get(parsed.tenant_id)
        except TenantNotFound:
            return None
        # Suspend revokes by rotating the key id (orchestrator), delete by removing the record.
        if not self.model_keys.matches(parsed, tenant.model_key_id):
            return None
        return tenant.tenant_id

    async def record(self, tenant_id: str, usage: Usage) -> None:
        model = self.upstream.model_id
        await self.usage.record(
            tenant_id,
            model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        self.metrics.tokens.labels(tenant_id, model, "prompt").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(tenant_id, model, "completion").inc(usage.completion_tokens)
        cost = cost_usd(self.prices, model, usage.prompt_tokens, usage.completion_tokens)
        if cost is not None:
            self.metrics.cost.labels(tenant_id, model).inc(cost)


GATEWAY = web.AppKey("model_gateway", Gateway)
MODEL_KEYS = web.AppKey("model_keys", ModelKeys)
MODEL_GATEWAY_URL = web.AppKey("model_gateway_url", str)
USAGE = web.AppKey("model_usage", UsageStore)


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(error_body(message, kind, code), status=status, headers=headers)


def _unauthorized() -> web.Response:
    return _error(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")


async def handle_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    if await gateway.authenticate(request) is None:
        return _unauthorized()
    model = gateway.settings.agent_model_id
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": model, "object": "model", "created": 0, "owned_by": "otm"}],
        }
    )


async def handle_chat(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    tenant_id = await gateway.authenticate(request)
    model = gateway.upstream.model_id
    if tenant_id is None:
        return _unauthorized()
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _error(400, "malformed JSON", "invalid_request_error")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "request too large", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "messages must be a list", "invalid_request_error")
    refusal = await gateway.limits.check(tenant_id)
    if refusal is not None:
        gateway.metrics.requests.labels(tenant_id, model, "limited").inc()
        return _error(
            429,
            f"tenant {tenant_id}: {refusal.reason}",
            "rate_limit_error",
            "rate_limit_exceeded",
            headers={"Retry-After": str(refusal.retry_after_s)},
        )
    if body.get("stream"):
        return await _stream(request, gateway, tenant_id, body)
    answer = await gateway.upstream.complete(body)
    if answer.usage is not None:
        await gateway.record(tenant_id, answer.usage)
    outcome = "ok" if answer.status == 200 else "upstream_error"
    gateway.metrics.requests.labels(tenant_id, model, outcome).inc()
    return web.json_response(answer.body, status=answer.status)


async def _stream(
    request: web.Request, gateway: Gateway, tenant_id: str, body: dict[str, Any]
) -> web.StreamResponse:
    model = gateway.upstream.model_id
    options = body.get("stream_options")
    client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    result = StreamResult()
    chunks = gateway.upstream.stream(body, result).__aiter__()
    first = await anext(chunks, None)
    if first is None and result.error_body is not None:
        gateway.metrics.requests.labels(tenant_id, model, "upstream_error").inc()
        return web.json_response(result.error_body, status=result.status)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    client_gone = False
    try:
        chunk = first
        while chunk is not None:
            if not client_gone and (client_wants_usage or not _usage_only(chunk)):
                try:
                    await response.write(chunk)
                except (ConnectionError, aiohttp.ClientConnectionError):
                    # Keep draining: the upstream bills the whole answer, so we count it.
                    client_gone = True
            chunk = await anext(chunks, None)
        if not client_gone:
            # The agent's stream ends before the usage write (an fsync with Redis's
            # appendfsync always): it need not wait for our bookkeeping.
            with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionError):
                await response.write_eof()
    finally:
        if result.usage is not None:
            await asyncio.shield(gateway.record(tenant_id, result.usage))
        gateway.metrics.requests.labels(tenant_id, model, "ok").inc()
    return response


def _usage_only(chunk: bytes) -> bool:
    """The final usage chunk (``choices: []``), which only clients that asked get."""
    if b'"usage"' not in chunk:
        return False
    try:
        payload = json.loads(chunk.removeprefix(b"data:").strip())
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("choices") == [] and "usage" in payload


def add_gateway_routes(app: web.Application, gateway: Gateway) -> None:
    app[GATEWAY] = gateway
    app.router.add_post("/v1/chat/completions", handle_chat)
    app.router.add_get("/v1/models", handle_models)


def make_upstream(settings: Settings, session: aiohttp.ClientSession) -> Upstream:
    if settings.model_upstream == "bedrock":
        from daemon.model_gateway.upstream_bedrock import BedrockUpstream

        return BedrockUpstream.from_settings(
            settings.aws_region,
            settings.bedrock_endpoint_url,
            settings.bedrock_model_id,
            settings.agent_model_id,
        )
    from daemon.model_gateway.upstream_openai import OpenAIUpstream

    assert settings.agent_model_base_url is not None
    return OpenAIUpstream(
        session,
        settings.agent_model_base_url,
        settings.agent_model_id,
        settings.agent_model_api_key,
    )


def build_gateway(
    settings: Settings,
    *,
    redis: aioredis.Redis,
    registry: Registry,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    model_keys: ModelKeys,
) -> Gateway:
    usage = UsageStore(redis)
    return Gateway(
        settings=settings,
        registry=registry,
        model_keys=model_keys,
        usage=usage,
        limits=ModelLimits(
            redis,
            usage,
            requests_per_min=settings.model_requests_per_min,
            tokens_per_day=settings.model_tokens_per_day,
        ),
        upstream=make_upstream(settings, session),
        metrics=GatewayMetrics.register(metrics.registry),
    )


async def model_gateway_ctx(app: web.Application) -> AsyncIterator[None]:
    """The agent-facing listener: the Bot API relay of polling tenants always (a tenant can
    switch to polling at any time), the model API when an upstream is configured; model
    keys always (tenants get one at create).

    Runs before the runtime's context: when ``model_gateway_url`` is unset, agents are
    rendered with this listener's own address (the settings object is replaced once here)."""
    settings = app[keys.SETTINGS]
    model_keys = ModelKeys(await shared_key_secret(settings.model_key_secret, app[keys.REDIS]))
    app[MODEL_KEYS] = model_keys
    app[USAGE] = UsageStore(app[keys.REDIS])
    listener = web.Application(client_max_size=MAX_REQUEST_BYTES)
    gateway: Gateway | None = None
    if settings.model_gateway_enabled:
        gateway = build_gateway(
            settings,
            redis=app[keys.REDIS],
            registry=app[keys.REGISTRY],
            session=app[keys.HTTP],
            metrics=app[keys.METRICS],
            model_keys=model_keys,
        )
        add_gateway_routes(listener, gateway)
    relay = BotApiRelay(
        session=app[keys.HTTP],
        upstream_base=settings.telegram_api_base,
        tenants=app[keys.TENANT_CACHE],
    )
    add_relay_routes(listener, relay)
    # No access log: the relay's paths hold bot tokens.
    runner = web.AppRunner(listener, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.model_gateway_host, settings.model_gateway_port)
    await site.start()
    host, port = runner.addresses[0][:2]
    listening = f"http://{host}:{port}/v1"
    if settings.model_gateway_url is None:
        app[keys.SETTINGS] = dataclasses.replace(settings, model_gateway_url=listening)
    if gateway is not None:
        app[MODEL_GATEWAY_URL] = listening
        log.info("model gateway listening on %s (upstream %s)", listening, settings.model_upstream)
    else:
        log.info("agent gateway listening on %s (Bot API relay; no model upstream)", listening)
    try:
        yield
    finally:
        await runner.cleanup()
        if gateway is not None:
            await gateway.upstream.close()
