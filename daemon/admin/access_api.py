"""Admin endpoints of admin access: named tokens and the audit log.

- GET    /v1/tokens          {"items": [{name, created_at, created_by, revoked}]} (the
                             configured ``admin`` token first; secrets never)
- POST   /v1/tokens          {"name"} → 201 {name, created_at, created_by, token}: the
                             secret, shown this once (only its SHA-256 is kept)
- DELETE /v1/tokens/{name}   204; the token is refused (401) by every replica at once
- GET    /v1/audit           ?tenant=ID&actor=NAME&action=A&since=1h&limit=N&before=CURSOR
                             {"items": [entry, ...] oldest first, "next": CURSOR|null}: the
                             newest ``limit`` matches; ``next`` pages to older ones
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from daemon import app_keys as keys
from daemon.admin.audit import ACTOR, audited, record
from daemon.admin.http import read_json_object
from daemon.admin.model import parse_since
from daemon.admin.tokens import validate_token_name
from daemon.model import validate_tenant_id

MAX_AUDIT_PAGE = 1000


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[keys.ADMIN_TOKENS].list()
    return web.json_response({"items": [t.public() for t in tokens]})


@audited("token.create")
async def create_token(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = validate_token_name(body.get("name"))
    record(request, changes={"token": {"before": None, "after": name}})
    info, secret = await request.app[keys.ADMIN_TOKENS].create(
        name, created_by=request.get(ACTOR) or "unknown"
    )
    return web.json_response({**info.public(), "token": secret}, status=201)


@audited("token.revoke")
async def revoke_token(request: web.Request) -> web.Response:
    name = validate_token_name(request.match_info["name"])
    record(request, changes={"token": {"before": name, "after": None}})
    await request.app[keys.ADMIN_TOKENS].revoke(name)
    return web.Response(status=204)


def _limit(raw: str | None) -> int:
    if raw in (None, ""):
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT_PAGE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_AUDIT_PAGE}")
    return int(raw)


async def read_audit(request: web.Request) -> web.Response:
    query = request.query
    tenant = query.get("tenant") or None
    if tenant is not None:
        validate_tenant_id(tenant)  # a deleted tenant's trail stays readable: no 404
    since_ms = None
    if query.get("since"):
        since_ms = int((datetime.now(UTC) - parse_since(query["since"])).timestamp() * 1000)
    items, cursor = await request.app[keys.AUDIT_LOG].read(
        tenant=tenant,
        actor=query.get("actor") or None,
        action=query.get("action") or None,
        since_ms=since_ms,
        before=query.get("before") or None,
        limit=_limit(query.get("limit")),
    )
    return web.json_response({"items": items, "next": cursor})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/tokens", list_tokens)
    app.router.add_post("/v1/tokens", create_token)
    app.router.add_delete("/v1/tokens/{name}", revoke_token)
    app.router.add_get("/v1/audit", read_audit)
