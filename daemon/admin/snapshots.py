"""Admin endpoints of point-in-time restore. A local agent's state is one snapshot (the
chosen one becomes the latest); a Kubernetes agent's is its synced ``state/`` and
``workspace/`` keys (rewritten from the chosen entry, which its sleeps packed).

- GET  /v1/tenants/{id}/snapshots   {"items": [{key, taken_at, trigger, size}]}, newest first
- POST /v1/tenants/{id}/restore     body {"snapshot": KEY} or {"at": RFC 3339 time} (exactly
                                    one; "at": the newest snapshot taken at or before it).
                                    The tenant is put to sleep (its final state is saved,
                                    as a history entry too), the chosen snapshot becomes the
                                    latest (Kubernetes: the synced tree) that the next wake
                                    restores, then the tenant
                                    wakes on it (a suspended or failed one stays so).
                                    200 {"tenant", "restored"}; 404 no such snapshot; 503 the
                                    sleep could not save the current state (nothing
                                    restored) or the wake after the restore failed.
"""

from __future__ import annotations

import logging
from datetime import datetime

from aiohttp import web

from daemon import app_keys as keys
from daemon.admin.audit import audited, record
from daemon.admin.http import error_response, read_json_object
from daemon.admin.http import tenant_id_param as _tenant_id
from daemon.admin.lifecycle import HELD
from daemon.app_keys import WAKE
from daemon.msgpath.wake import StateNotSaved, WakeFailed, WakeRefused
from daemon.ports import SnapshotInfo

log = logging.getLogger(__name__)


class NoSuchSnapshot(LookupError):
    pass


def parse_at(raw: object) -> datetime:
    if not isinstance(raw, str) or not raw:
        raise ValueError("at must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"at: {raw!r} is not an RFC 3339 time") from None
    if at.tzinfo is None:
        raise ValueError(f"at: {raw!r} has no time zone (append Z for UTC)")
    return at


def choose_snapshot(
    history: list[SnapshotInfo], *, key: str | None, at: datetime | None
) -> SnapshotInfo:
    """The snapshot named by ``key``, or the newest taken at or before ``at``."""
    if key is not None:
        for snapshot in history:
            if snapshot.key == key:
                return snapshot
        raise NoSuchSnapshot(f"no snapshot {key!r}")
    assert at is not None
    earlier = [s for s in history if s.taken_at <= at]
    if not earlier:
        raise NoSuchSnapshot(f"no snapshot taken at or before {at.isoformat()}")
    return max(earlier, key=lambda s: s.taken_at)


def restore_target(body: dict[str, object]) -> tuple[str | None, datetime | None]:
    key, at = body.get("snapshot"), body.get("at")
    if (key is None) == (at is None):
        raise ValueError('give exactly one of "snapshot" (a key) and "at" (a time)')
    if key is not None:
        if not isinstance(key, str) or not key:
            raise ValueError("snapshot must be a snapshot key (see GET .../snapshots)")
        return key, None
    return None, parse_at(at)


async def list_snapshots(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    await request.app[keys.REGISTRY].get(tenant_id)
    history = await request.app[keys.STATE_STORE].list_snapshots(tenant_id)
    return web.json_response({"items": [snapshot.as_dict() for snapshot in history]})


@audited("tenant.restore")
async def restore_tenant(request: web.Request) -> web.Response:
    tenant_id = _tenant_id(request)
    body = await read_json_object(request)
    key, at = restore_target(body)
    registry, store = request.app[keys.REGISTRY], request.app[keys.STATE_STORE]
    await registry.get(tenant_id)
    # Chosen before the sleep (a 404 leaves the tenant alone), checked again after it.
    try:
        choose_snapshot(await store.list_snapshots(tenant_id), key=key, at=at)
    except NoSuchSnapshot as exc:
        return error_response(404, f"tenant {tenant_id!r}: {exc}")

    on_kubernetes = request.app[keys.SETTINGS].runtime == "kubernetes"

    async def promote() -> SnapshotInfo:
        chosen = choose_snapshot(await store.list_snapshots(tenant_id), key=key, at=at)
        if on_kubernetes:  # the next wake's init container copies the rewritten tree back
            return await store.restore_tree(tenant_id, chosen.key)
        return await store.promote_snapshot(tenant_id, chosen.key)

    wake = request.app[WAKE]
    try:
        restored = await wake.while_asleep(tenant_id, promote)
    except StateNotSaved as exc:
        return error_response(503, f"not restored: {exc}")
    except (NoSuchSnapshot, KeyError) as exc:  # pruned while the tenant went to sleep
        return error_response(404, f"tenant {tenant_id!r}: {exc}")
    log.info("tenant %s restored to snapshot %s", tenant_id, restored.key)
    record(request, changes={"snapshot": {"before": None, "after": restored.key}})
    await request.app[keys.COORDINATION].publish_event(tenant_id, "restored", snapshot=restored.key)
    tenant = await registry.get(tenant_id)
    if tenant.status not in HELD:  # restored, not woken: an operator resumes these first
        try:
            tenant = await wake.wake(tenant_id)
        except (WakeRefused, WakeFailed, TimeoutError) as exc:
            return error_response(
                503, f"restored {restored.key}, but the wake failed: {str(exc) or 'timed out'}"
            )
    return web.json_response({"tenant": tenant.public(), "restored": restored.as_dict()})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/tenants/{tenant_id}/snapshots", list_snapshots)
    app.router.add_post("/v1/tenants/{tenant_id}/restore", restore_tenant)
