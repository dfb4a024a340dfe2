"""Admin HTTP API: JSON, snake_case, bearer-token auth; probes and aggregate metrics open
(``/metrics/tenants``, the per-tenant series, needs the token)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon import app_keys as keys
from daemon.admin.audit import ACTOR, audited, changes_between, record, tenant_changes
from daemon.admin.http import (
    error_response,
    matches_labels,
    parse_label_selector,
    read_json_object,
)
from daemon.admin.http import tenant_id_param as _tenant_id
from daemon.admin.tokens import TokenExists, TokenNotFound
from daemon.coordination import config_as_dict
from daemon.model import (
    ConditionFailed,
    InvalidTenantId,
    TenantExists,
    TenantNotFound,
    TenantStatus,
    validate_tenant_id,
)

log = logging.getLogger(__name__)

UNAUTHENTICATED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors to clear HTTP answers; never leak a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return error_response(exc.status, exc.reason)
        raise
    except InvalidTenantId as exc:
        return error_response(400, str(exc))
    except (TenantNotFound, TokenNotFound) as exc:
        return error_response(404, str(exc))
    except (TenantExists, ConditionFailed, TokenExists) as exc:
        return error_response(409, str(exc))
    except ValueError as exc:
        return error_response(400, str(exc))
    except Exception:
        log.exception("admin API error on %s %s", request.method, request.path)
        return error_response(500, "internal error (see daemon log)")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A configured or named admin token (looked up on every request, so a revoked one is
    refused at once by every replica); its name is the request's actor."""
    if request.path in UNAUTHENTICATED_PATHS:
        return await handler(request)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not secret:
        return error_response(401, "missing or invalid bearer token")
    try:
        actor = await request.app[keys.ADMIN_TOKENS].authenticate(secret)
    except Exception as exc:  # a named token cannot be checked without Redis: refuse it
        log.warning("admin token check failed: %s", exc)
        return error_response(503, "cannot check the admin token now (Redis unreachable)")
    if actor is None:
        return error_response(401, "missing or invalid bearer token")
    request[ACTOR] = actor
    return await handler(request)


# -- probes -------------------------------------------------------------------
async def livez(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    failing: list[str] = []
    if not await request.app[keys.COORDINATION].ping():
        failing.append("redis")
    try:
        await request.app[keys.REGISTRY].list(status=TenantStatus.PROVISIONING)
    except Exception as exc:
        log.warning("readiness: registry check failed: %s", exc)
        failing.append("registry")
    body: dict[str, Any] = {}
    # A write and a delete, not a list: a store that refuses writes fails every sleep.
    problem = await request.app[keys.STATE_STORE].write_problem()
    if problem:
        log.warning("readiness: %s", problem)
        failing.append("state_store")
        body["state_store"] = problem
    return web.json_response(
        {"ready": not failing, "failing": failing, **body}, status=503 if failing else 200
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def tenant_metrics(request: web.Request) -> web.Response:
    """Per-tenant series (they name tenants): behind the bearer token, unlike /metrics."""
    body = generate_latest(request.app[keys.METRICS].tenant_registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- tenants ------------------------------------------------------------------
async def list_tenants(request: web.Request) -> web.Response:
    status_param = request.query.get("status")
    try:
        status = TenantStatus(status_param) if status_param else None
    except ValueError:
        allowed = ", ".join(s.value for s in TenantStatus)
        raise ValueError(f"unknown status {status_param!r} (one of {allowed})") from None
    selector = parse_label_selector(request.query.get("selector", ""))
    tenants = await request.app[keys.REGISTRY].list(status=status)
    items = [t.public() for t in tenants if matches_labels(t.labels, selector)]
    return web.json_response({"items": items})


@audited("tenant.create")
async def create_tenant(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    with contextlib.suppress(InvalidTenantId):  # named also when the create is refused
        record(request, tenant=validate_tenant_id(body.get("tenant_id", "")))
    tenant = await request.app[keys.ORCHESTRATOR].create_tenant(body)
    record(request, tenant=tenant.tenant_id, changes=tenant_changes(None, tenant))
    return web.json_response(tenant.public(), status=201)


async def get_tenant(request: web.Request) -> web.Response:
    tenant = await request.app[keys.REGISTRY].get(_tenant_id(request))
    return web.json_response(tenant.public())


@audited("tenant.update")
async def patch_tenant(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    body = await read_json_object(request)
    before = await request.app[keys.REGISTRY].get(tenant_id)
    tenant = await request.app[keys.ORCHESTRATOR].update_tenant(tenant_id, body)
    record(request, changes=tenant_changes(before, tenant))
    return web.json_response(tenant.public())


@audited("tenant.delete")
async def delete_tenant(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    before = await request.app[keys.REGISTRY].get(tenant_id)
    await request.app[keys.ORCHESTRATOR].delete_tenant(tenant_id)
    record(request, changes=tenant_changes(before, None))
    return web.Response(status=204)


async def _hold_or_release(request: web.Request, *, hold: bool) -> web.Response:
    """Suspend (hold) or resume a tenant, its audit entry recording the status change."""
    tenant_id = _tenant_id(request)
    before = await request.app[keys.REGISTRY].get(tenant_id)
    orchestrator = request.app[keys.ORCHESTRATOR]
    change = orchestrator.suspend_tenant if hold else orchestrator.resume_tenant
    tenant = await change(tenant_id)
    record(request, changes=tenant_changes(before, tenant))
    return web.json_response(tenant.public())


@audited("tenant.suspend")
async def suspend_tenant(request: web.Request) -> web.Response:
    return await _hold_or_release(request, hold=True)


@audited("tenant.resume")
async def resume_tenant(request: web.Request) -> web.Response:
    return await _hold_or_release(request, hold=False)


async def tenant_events(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    await request.app[keys.REGISTRY].get(tenant_id)
    events = await request.app[keys.COORDINATION].event_log(tenant_id)
    return web.json_response({"items": events})


# -- live config ----------------------------------------------------------------
async def get_config(request: web.Request) -> web.Response:
    config = await request.app[keys.COORDINATION].get_config()
    return web.json_response(config_as_dict(config))


@audited("config.set")
async def set_config(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if not body:
        raise ValueError("no config keys given")
    coordination = request.app[keys.COORDINATION]
    before = config_as_dict(await coordination.get_config())
    after = config_as_dict(await coordination.set_config(body))
    record(request, changes=changes_between(before, after))
    return web.json_response(after)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics/tenants", tenant_metrics)
    app.router.add_get("/v1/tenants", list_tenants)
    app.router.add_post("/v1/tenants", create_tenant)
    app.router.add_get("/v1/tenants/{tenant_id}", get_tenant)
    app.router.add_patch("/v1/tenants/{tenant_id}", patch_tenant)
    app.router.add_delete("/v1/tenants/{tenant_id}", delete_tenant)
    app.router.add_post("/v1/tenants/{tenant_id}/suspend", suspend_tenant)
    app.router.add_post("/v1/tenants/{tenant_id}/resume", resume_tenant)
    app.router.add_get("/v1/tenants/{tenant_id}/events", tenant_events)
    app.router.add_get("/v1/config", get_config)
    app.router.add_patch("/v1/config", set_config)
    app.router.add_put("/v1/config", set_config)
