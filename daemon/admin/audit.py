"""The admin audit log and the admin API's access log.

Every admin mutation is one entry in a Redis Stream (``otm:audit``): time, actor (the
admin token's name), source address, tenant, action, the fields changed (before → after,
secrets as ``***``) and the outcome the client got. The stream is not per tenant, so the
trail outlives a deleted tenant; it is trimmed by count and by age (``audit_max_entries``,
``audit_retention_days``).

A handler takes part with one decorator, and adds what it changed with one call::

    @audited("tenant.restore")
    async def restore(request):
        before = await registry.get(tenant_id)
        after = await ...
        record(request, changes=tenant_changes(before, after))

The middleware writes the entry once the response is known, so a refused or failed
mutation is recorded too (with its status and error), and logs one access-log line per
admin request (method, path, status, actor, duration; never a header or a body).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from daemon import app_keys as keys
from daemon.model import (
    SECRET_FIELDS,
    InvalidTenantId,
    Tenant,
    tenant_to_record,
    validate_tenant_id,
)
from daemon.redis_keys import AUDIT_STREAM
from daemon.settings import SECRET_SETTINGS

log = logging.getLogger(__name__)
access_log = logging.getLogger("daemon.admin.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Changes = dict[str, dict[str, Any]]

REDACTED = "***"
SECRET_NAMES = SECRET_FIELDS | SECRET_SETTINGS
"""Fields whose values an audit entry never shows (tenant secrets, secret settings)."""
TENANT_AUDIT_FIELDS = (
    "status",
    "status_reason",
    "bot_token",
    "idle_timeout_s",
    "image",
    "labels",
    "model_key_id",
)
"""What an operator changes on a tenant (runtime details such as the endpoint are left out:
they follow from the status)."""
ACTOR = web.RequestKey("actor", str)
"""The name of the admin token that sent this request (set by the auth middleware)."""
AUDIT_ACTION_ATTR = "audit_action"
"""Set on an ``@audited`` handler: tests check that every mutating admin route has one."""
PROBE_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
"""Probes are access-logged at DEBUG only (a kubelet probes every few seconds)."""
READ_BATCH = 200
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass
class AuditNote:
    """What the handler is doing; the middleware adds who, from where and the outcome."""

    action: str
    tenant: str | None = None
    changes: Changes = field(default_factory=dict)


NOTE: web.RequestKey[AuditNote] = web.RequestKey("audit_note")
"""This request's audit note (set by ``@audited`` or ``record``)."""


def audited(action: str) -> Callable[[Handler], Handler]:
    """Mark an admin handler as a mutation named ``action`` (e.g. ``tenant.suspend``). The
    tenant is taken from the ``{tenant_id}`` path parameter when there is a valid one."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            request[NOTE] = AuditNote(action, tenant=_path_tenant(request))
            return await handler(request)

        setattr(run, AUDIT_ACTION_ATTR, action)
        return run

    return decorate


def record(
    request: web.Request,
    *,
    action: str | None = None,
    tenant: str | None = None,
    changes: Changes | None = None,
) -> None:
    """Add to this request's audit entry: the tenant it concerns and what changed. Outside an
    ``@audited`` handler, ``action`` starts an entry."""
    note: AuditNote | None = request.get(NOTE)
    if note is None:
        if action is None:
            raise RuntimeError("audit.record outside an @audited handler needs action=")
        note = request[NOTE] = AuditNote(action)
    elif action is not None:
        note.action = action
    if tenant is not None:
        note.tenant = tenant
    if changes:
        note.changes.update(changes)


def changes_between(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    fields: Iterable[str] | None = None,
) -> Changes:
    """``{field: {"before": old, "after": new}}`` for every field that differs; secret fields
    show ``***`` (or null when unset). A missing side (create, delete) counts as null and
    empty values beside it are left out."""
    old_doc = dict(before or {})
    new_doc = dict(after or {})
    names = fields if fields is not None else sorted(set(old_doc) | set(new_doc))
    out: Changes = {}
    for name in names:
        old, new = old_doc.get(name), new_doc.get(name)
        if old == new or (before is None and _empty(new)) or (after is None and _empty(old)):
            continue
        if name in SECRET_NAMES:
            old, new = _redacted(old), _redacted(new)
        out[name] = {"before": old, "after": new}
    return out


def tenant_changes(before: Tenant | None, after: Tenant | None) -> Changes:
    """What an operator action changed on a tenant (None: it did not exist before/after)."""
    return changes_between(
        tenant_to_record(before) if before is not None else None,
        tenant_to_record(after) if after is not None else None,
        fields=TENANT_AUDIT_FIELDS,
    )


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {}


def _redacted(value: Any) -> str | None:
    return REDACTED if value else None


def _path_tenant(request: web.Request) -> str | None:
    raw = request.match_info.get("tenant_id")
    if raw is None:
        return None
    try:
        return validate_tenant_id(raw)
    except InvalidTenantId:
        return None  # answered 400; the entry keeps no unvalidated text


_APPEND = """
local now = redis.call('TIME')
local oldest_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
if oldest_ms > 0 then redis.call('XTRIM', KEYS[1], 'MINID', oldest_ms) end
return redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'entry', ARGV[3])
"""
"""Trim by age, then append trimmed to ``max_entries``. Age is measured on Redis's clock,
the one that stamps the entry ids, so replicas with skewed clocks agree. Exact trims: an
audit trail's length is part of its promise."""


class AuditLog:
    """The audit stream: appended by the middleware, read by ``GET /v1/audit``."""

    def __init__(self, redis: aioredis.Redis, *, max_entries: int, retention_s: float) -> None:
        self.redis = redis
        self.max_entries = max_entries
        self.retention_s = retention_s

    async def append(self, entry: Mapping[str, Any]) -> str:
        """Store ``entry``; its stream id."""
        entry_id = await self.redis.eval(
            _APPEND,
            1,
            AUDIT_STREAM,
            self.max_entries,
            int(self.retention_s * 1000),
            json.dumps(dict(entry)),
        )
        return _text(entry_id)

    async def read(
        self,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The newest ``limit`` matching entries older than the ``before`` cursor, oldest
        first, and the cursor of the next (older) page (None: no more)."""
        if before is not None and not _STREAM_ID.fullmatch(before):
            raise ValueError(f"before: expected an entry id like 1733320000000-0, got {before!r}")
        newest = "+" if before is None else f"({before}"
        oldest = "-" if since_ms is None else str(since_ms)
        found: list[dict[str, Any]] = []
        while True:
            batch: list[Any] = (
                await self.redis.xrevrange(AUDIT_STREAM, newest, oldest, count=READ_BATCH) or []
            )
            for raw_id, fields in batch:
                entry = _decode(raw_id, fields)
                if (
                    (tenant is None or entry.get("tenant") == tenant)
                    and (actor is None or entry.get("actor") == actor)
                    and (action is None or entry.get("action") == action)
                ):
                    found.append(entry)
                    if len(found) == limit:
                        found.reverse()
                        return found, entry["id"]
            if len(batch) < READ_BATCH:
                found.reverse()
                return found, None
            newest = f"({_text(batch[-1][0])}"


def _decode(raw_id: bytes | str, fields: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    raw = fields.get(b"entry", fields.get("entry"))
    entry: dict[str, Any] = json.loads(raw) if raw is not None else {}
    entry["id"] = _text(raw_id)
    return entry


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def source_address(request: web.Request) -> str | None:
    """The peer's address (no proxy header is trusted: the admin listener is private)."""
    return request.remote


def access_middleware(*, log_requests: bool) -> Any:
    """Outermost admin middleware: sees the final status of every request (the errors
    middleware inside it has turned exceptions into answers)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            await _finish(request, exc.status, exc.reason, started, log_requests)
            raise
        await _finish(request, response.status, _error_of(response), started, log_requests)
        return response

    return middleware


async def _finish(
    request: web.Request, status: int, error: str | None, started: float, log_requests: bool
) -> None:
    actor: str | None = request.get(ACTOR)
    if log_requests:
        _log_access(request, status, actor, started)
    note: AuditNote | None = request.get(NOTE)
    if note is None:
        return
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(),
        "actor": actor,
        "source": source_address(request),
        "tenant": note.tenant,
        "action": note.action,
        "changes": note.changes,
        "outcome": "ok" if status < 400 else "error",
        "status": status,
    }
    if status >= 400 and error:
        entry["error"] = error
    try:
        await request.app[keys.AUDIT_LOG].append(entry)
    except Exception as exc:  # the mutation happened: keep the entry in the log at least
        request.app[keys.METRICS].audit_entries_lost.inc()
        log.error("audit entry not stored (%s): %s", exc, json.dumps(entry))


def _log_access(request: web.Request, status: int, actor: str | None, started: float) -> None:
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    level = logging.DEBUG if request.path in PROBE_PATHS else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    fields = {
        "method": request.method,
        "path": request.path,  # no query string: nothing a client sends is echoed beyond it
        "status": status,
        "actor": actor,
        "source": source_address(request),
        "duration_ms": duration_ms,
    }
    access_log.log(
        level,
        "%s %s %s actor=%s source=%s %.1fms",
        request.method,
        request.path,
        status,
        actor or "-",
        fields["source"] or "-",
        duration_ms,
        extra={"fields": fields},
    )


def _error_of(response: web.StreamResponse) -> str | None:
    """The ``{"error": ...}`` of an error answer (the daemon's own message, secret-free)."""
    if response.status < 400 or not isinstance(response, web.Response):
        return None
    try:
        body = json.loads(response.body) if isinstance(response.body, bytes) else None
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None
