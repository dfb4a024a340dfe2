"""Admin endpoints of model access and wake admission.

- POST /v1/tenants/{id}/rotate-key   200 tenant: a new model key (the old one answers 401 at
                                     once; the agent gets the new one at its next wake)
- GET  /v1/usage?since=24h[&tenant=ID]
                                     {"since", "items": [{tenant_id, requests, prompt_tokens,
                                     completion_tokens, total_tokens, cost_usd, models: {...}}]}
- GET  /v1/wake-queue                {"cap", "in_progress": [...], "queued": [...]} (FIFO order)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from daemon import app_keys as keys
from daemon.admin.audit import audited, record, tenant_changes
from daemon.app_keys import WAKE
from daemon.model import validate_tenant_id
from daemon.model_gateway.app import USAGE
from daemon.model_gateway.usage import ModelUsage
from daemon.model_pricing import cost_usd, parse_prices

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SINCE = timedelta(days=400)


def parse_since(raw: str) -> timedelta:
    """``30m``, ``24h``, ``7d``; ValueError otherwise (400)."""
    match = _DURATION.match(raw.strip())
    if not match:
        raise ValueError(f"since: expected a duration like 30m, 24h or 7d, got {raw!r}")
    delta = timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    if delta > MAX_SINCE:
        raise ValueError("since: at most 400d (usage is kept that long)")
    return delta


@audited("tenant.rotate-key")
async def rotate_key(request: web.Request) -> web.Response:
    tenant_id = validate_tenant_id(request.match_info["tenant_id"])
    before = await request.app[keys.REGISTRY].get(tenant_id)
    tenant = await request.app[keys.ORCHESTRATOR].rotate_model_key(tenant_id)
    record(request, changes=tenant_changes(before, tenant))
    return web.json_response(tenant.public())


def _usage_json(usage: ModelUsage, cost: float | None) -> dict[str, Any]:
    return {
        "requests": usage.requests,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": None if cost is None else round(cost, 6),
    }


async def usage(request: web.Request) -> web.Response:
    since = parse_since(request.query.get("since", "24h"))
    store = request.app[USAGE]
    prices = parse_prices(request.app[keys.SETTINGS].model_prices)
    tenant = request.query.get("tenant")
    if tenant:
        await request.app[keys.REGISTRY].get(validate_tenant_id(tenant))  # 404 if unknown
        tenant_ids = [tenant]
    else:
        tenant_ids = sorted({t.tenant_id for t in await request.app[keys.REGISTRY].list()})
    start = datetime.now(UTC) - since
    items = []
    for entry in await store.since(tenant_ids, start):
        models = {}
        total_cost: float | None = None
        for model, model_usage in sorted(entry.models.items()):
            cost = cost_usd(prices, model, model_usage.prompt_tokens, model_usage.completion_tokens)
            if cost is not None:
                total_cost = (total_cost or 0.0) + cost
            models[model] = _usage_json(model_usage, cost)
        items.append(
            {
                "tenant_id": entry.tenant_id,
                **_usage_json(entry.total(), total_cost),
                "models": models,
            }
        )
    return web.json_response({"since": start.isoformat(), "items": items})


async def wake_queue(request: web.Request) -> web.Response:
    admission = request.app[WAKE].admission
    if admission is None:
        return web.json_response({"cap": None, "in_progress": [], "queued": []})
    snapshot = await admission.snapshot()
    return web.json_response(
        {"cap": snapshot.cap, "in_progress": snapshot.in_progress, "queued": snapshot.queued}
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/tenants/{tenant_id}/rotate-key", rotate_key)
    app.router.add_get("/v1/usage", usage)
    app.router.add_get("/v1/wake-queue", wake_queue)
