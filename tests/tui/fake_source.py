"""An in-memory TenantSource for UI tests: records are real ``Tenant.public()`` views,
config changes go through the daemon's own LiveConfig validation, and every call is
recorded so tests can assert what the UI asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.coordination import LiveConfig
from daemon.model import Tenant, TenantStatus, validate_tenant_id
from daemon.orchestrator import _CREATE_FIELDS, _PATCH_FIELDS, _check_body
from otm.tui.source import (
    BufferInfo,
    Delete,
    Record,
    Snapshot,
    SourceError,
    SourceUnavailable,
    TenantDetails,
    Upsert,
    WatchEvent,
)
from tests.support.fanout import Fanout

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
_DROP = object()


def frozen_clock() -> datetime:
    return NOW


def tenant(
    tenant_id: str,
    status: str = "idle",
    *,
    created_ago: timedelta = timedelta(days=3),
    active_ago: timedelta = timedelta(minutes=30),
    ip: str | None = None,
    **fields: Any,
) -> Tenant:
    """A tenant record with fixed times relative to NOW (a running one gets an endpoint)."""
    running = status in ("running", "stopping")
    return Tenant(
        tenant_id=tenant_id,
        status=TenantStatus(status),
        webhook_secret="0" * 64,
        gateway_token="1" * 64,
        hooks_token="2" * 64,
        bot_token="123:abc",
        endpoint=f"http://{ip}:8787/telegram-webhook" if running and ip else None,
        gateway_url=f"http://{ip}:18789" if running and ip else None,
        pod_name=tenant_id if running else None,
        created_at=NOW - created_ago,
        updated_at=NOW - active_ago,
        last_active_at=NOW - active_ago,
        **fields,
    )


# name, status, pod IP, last active, created (s, m, h, d ago); "-" for no IP.
MIXED_TABLE = """
acme-support   running      10.0.3.7   2m   41d
alpine-tours   idle         -          5h   12d
bakery-bot     running      10.0.3.12  9m   8d
blue-harbor    provisioning -          10s  2d
cedar-legal    suspended    -          3d   90d
city-museum    idle         -          2d   30d
delta-fitness  failed       -          40m  6d
dune-coffee    running      10.0.4.3   12m  15d
echo-dental    stopping     10.0.4.9   11m  4d
fjord-rentals  idle         -          26h  60d
garden-club    running      10.0.5.21  30s  1d
harbor-pilots  idle         -          7d   200d
ivy-books      provisioning -          5s   3h
juniper-vet    running      10.0.5.30  4m   19d
kite-school    idle         -          50m  9d
lumen-optics   failed       -          2h   1d
maple-dental   running      10.0.6.2   1m   33d
nova-robotics  suspended    -          14d  120d
orbit-cafe     running      10.0.6.8   7m   3d
pine-hostel    idle         -          3h   5d
"""
MIXED_EXTRAS: dict[str, dict[str, Any]] = {
    "bakery-bot": {"idle_timeout_s": 900},
    "cedar-legal": {"status_reason": "billing hold"},
    "delta-fitness": {
        "status_reason": "wake failed: readiness timeout after 600s",
        "wake_attempts": 5,
    },
    "juniper-vet": {"labels": {"plan": "pro"}},
    "lumen-optics": {"status_reason": "image pull failed", "wake_attempts": 5},
    "maple-dental": {"labels": {"plan": "pro"}},
}
_UNITS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1)}
_UNITS["d"] = timedelta(days=1)


def _ago(text: str) -> timedelta:
    return int(text[:-1]) * _UNITS[text[-1]]


def mixed_tenants() -> list[Tenant]:
    """Twenty tenants in every state, as an operator would see on a busy afternoon."""
    rows = [line.split() for line in MIXED_TABLE.strip().splitlines()]
    return [
        tenant(
            name,
            status,
            ip=None if ip == "-" else ip,
            active_ago=_ago(active),
            created_ago=_ago(created),
            **MIXED_EXTRAS.get(name, {}),
        )
        for name, status, ip, active, created in rows
    ]


MIXED_BUFFERS = {
    "blue-harbor": 2,
    "cedar-legal": 14,
    "ivy-books": 1,
    "delta-fitness": 3,
    "nova-robotics": 6,
}


def mixed_events(tenant_id: str) -> list[Record]:
    """A wake cycle as the daemon logs it (ids carry the append time in ms)."""
    base = int((NOW - timedelta(minutes=20)).timestamp() * 1000)
    kinds = [
        ("created", {}),
        ("wake", {"reason": "message"}),
        ("running", {"endpoint": "http://10.0.3.7:8787/telegram-webhook"}),
        ("sleep", {"reason": "idle"}),
        ("wake", {"reason": "message"}),
        ("running", {"endpoint": "http://10.0.3.7:8787/telegram-webhook"}),
    ]
    return [
        {"tenant_id": tenant_id, "kind": kind, **data, "id": f"{base + i * 180_000}-0"}
        for i, (kind, data) in enumerate(kinds)
    ]


class FakeTenantSource:
    label = "http://127.0.0.1:7070"

    def __init__(
        self,
        tenants: Iterable[Tenant] = (),
        *,
        buffers: Mapping[str, int] | None = None,
        config: LiveConfig | None = None,
    ) -> None:
        self.records: dict[str, Tenant] = {t.tenant_id: t for t in tenants}
        self.buffers = dict(buffers or {})
        self.usage_items: dict[str, Record] = {}
        """What GET /v1/usage reports per tenant (the test sets it)."""
        self.audit_entries: list[Record] = []
        """What GET /v1/audit reports, oldest first (the test sets it)."""
        self.config = config or LiveConfig(warm_pool_target=3)
        self.calls: list[tuple[str, Any]] = []
        self.log_lines: dict[str, list[str]] = {}
        self.snapshot_items: dict[str, list[Record]] = {}
        """Each tenant's snapshot history, newest first (the test sets it)."""
        self.fail_connects = 0
        """The next N watch() calls fail at once (daemon down)."""
        self.down = False
        """While True, every watch() call fails at once (daemon down until the test says)."""
        self.fail_status = False
        self.status_gate: asyncio.Event | None = None
        """When set, get_status waits for it: a daemon that is slow to answer."""
        self.watch_calls = 0
        self._watchers: Fanout[Any] = Fanout()
        self._log_followers: dict[str, list[asyncio.Queue[str]]] = {}

    # -- test controls ----------------------------------------------------------------
    def public(self, tenant_id: str) -> Record:
        return self.records[tenant_id].public()

    def upsert(self, record: Tenant) -> None:
        self.records[record.tenant_id] = record
        self._publish(Upsert(record.public()))

    def remove(self, tenant_id: str) -> None:
        self.records.pop(tenant_id, None)
        self._publish(Delete(tenant_id))

    def drop_watches(self) -> None:
        """The connection breaks: every open watch raises SourceUnavailable."""
        self._watchers.publish(_DROP)

    def push_log(self, tenant_id: str, line: str) -> None:
        self.log_lines.setdefault(tenant_id, []).append(line)
        for queue in self._log_followers.get(tenant_id, []):
            queue.put_nowait(line)

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    def _publish(self, event: WatchEvent) -> None:
        self._watchers.publish(event)

    def _get(self, tenant_id: str) -> Tenant:
        try:
            return self.records[tenant_id]
        except KeyError:
            raise SourceError(f"tenant {tenant_id!r} not found") from None

    def _status_dict(self) -> Record:
        counts: dict[str, int] = {}
        for record in self.records.values():
            counts[record.status.value] = counts.get(record.status.value, 0) + 1
        running = counts.get("running", 0) + counts.get("stopping", 0)
        return {
            "daemon": {
                "version": "0.1.0",
                "pid": 4242,
                "uptime_s": 11_520.0,
                "leader": True,
                "watchers": len(self._watchers),
            },
            "redis": {"ok": True},
            "registry": {
                "kind": "sqlite",
                "ok": True,
                "tenants_by_status": dict(sorted(counts.items())),
            },
            "runtime": {"kind": "local", "ok": True, "instances": running + 2},
            "warm_pool": {"target": self.config.warm_pool_target, "size": 2},
            "config": asdict(self.config),
        }

    # -- TenantSource ---------------------------------------------------------------
    async def watch(self) -> AsyncIterator[WatchEvent]:
        self.watch_calls += 1
        if self.down or self.fail_connects > 0:
            self.fail_connects = max(0, self.fail_connects - 1)
            raise SourceUnavailable("cannot reach http://127.0.0.1:7070: connection refused")
        with self._watchers.subscribe() as queue:
            yield Snapshot(tuple(r.public() for r in self.records.values()))
            while True:
                item = await queue.get()
                if item is _DROP:
                    raise SourceUnavailable("lost the connection to http://127.0.0.1:7070")
                yield item

    async def get_status(self) -> Record:
        self.calls.append(("get_status", None))
        if self.status_gate is not None:
            await self.status_gate.wait()
        if self.fail_status:
            raise SourceUnavailable("cannot reach http://127.0.0.1:7070: connection refused")
        return self._status_dict()

    async def get_config(self) -> dict[str, Any]:
        self.calls.append(("get_config", None))
        return asdict(self.config)

    async def set_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("set_config", dict(changes)))
        try:
            valid = LiveConfig.validate_changes(dict(changes))
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        self.config = replace(self.config, **valid)
        return asdict(self.config)

    async def wake(self, tenant_id: str) -> Record:
        self.calls.append(("wake", tenant_id))
        record = self._get(tenant_id)
        if record.status in (TenantStatus.SUSPENDED, TenantStatus.FAILED):
            # As strict as the daemon: 409 with the reason (daemon/admin/lifecycle.py).
            raise SourceError(
                f"tenant {tenant_id!r} is {record.status.value} — not woken "
                f"(`otm tenant resume {tenant_id}` first)"
            )
        self.upsert(replace(record, status=TenantStatus.PROVISIONING, version=record.version + 1))
        return record.public()  # like the API's 202: the record as it was when accepted

    async def sleep(self, tenant_id: str) -> Record:
        self.calls.append(("sleep", tenant_id))
        record = self._get(tenant_id)
        slept = replace(
            record,
            status=TenantStatus.IDLE,
            endpoint=None,
            gateway_url=None,
            pod_name=None,
            version=record.version + 1,
        )
        self.upsert(slept)
        return slept.public()

    async def suspend(self, tenant_id: str) -> Record:
        self.calls.append(("suspend", tenant_id))
        record = self._get(tenant_id)
        held = replace(
            record, status=TenantStatus.SUSPENDED, endpoint=None, version=record.version + 1
        )
        self.upsert(held)
        return held.public()

    async def resume(self, tenant_id: str) -> Record:
        self.calls.append(("resume", tenant_id))
        record = self._get(tenant_id)
        if record.status not in (TenantStatus.SUSPENDED, TenantStatus.FAILED):
            raise SourceError(f"tenant {tenant_id!r} is {record.status.value}, not suspended")
        resumed = replace(
            record, status=TenantStatus.IDLE, status_reason="", version=record.version + 1
        )
        self.upsert(resumed)
        return resumed.public()

    async def create(self, body: Mapping[str, Any]) -> Record:
        self.calls.append(("create", dict(body)))
        try:  # the daemon's own validation (no HTTP in between)
            fields = _check_body(dict(body), _CREATE_FIELDS)
            tenant_id = fields.pop("tenant_id", None)
            if not isinstance(tenant_id, str):
                raise ValueError("tenant_id is required")
            validate_tenant_id(tenant_id)
            if "bot_token" not in fields:
                raise ValueError("bot_token is required (the tenant's Telegram bot token)")
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if tenant_id in self.records:
            raise SourceError(f"tenant {tenant_id!r} already exists")
        record = Tenant(tenant_id=tenant_id, created_at=NOW, **fields)
        self.upsert(record)
        return record.public()

    async def update(self, tenant_id: str, changes: Mapping[str, Any]) -> Record:
        self.calls.append(("update", (tenant_id, dict(changes))))
        record = self._get(tenant_id)
        try:
            fields = _check_body(dict(changes), _PATCH_FIELDS)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        updated = replace(record, **fields, version=record.version + 1)
        self.upsert(updated)
        return updated.public()

    async def delete(self, tenant_id: str) -> None:
        self.calls.append(("delete", tenant_id))
        self._get(tenant_id)
        self.remove(tenant_id)

    async def logs(
        self, tenant_id: str, *, follow: bool, since_s: float | None
    ) -> AsyncIterator[str]:
        self.calls.append(("logs", (tenant_id, follow, since_s)))
        self._get(tenant_id)
        queue: asyncio.Queue[str] = asyncio.Queue()
        followers = self._log_followers.setdefault(tenant_id, [])
        followers.append(queue)
        try:
            for line in list(self.log_lines.get(tenant_id, [])):
                yield line
            while follow:
                yield await queue.get()
        finally:
            followers.remove(queue)

    @property
    def log_followers(self) -> int:
        return sum(len(v) for v in self._log_followers.values())

    async def describe(self, tenant_id: str) -> TenantDetails:
        self.calls.append(("describe", tenant_id))
        record = self._get(tenant_id)
        return TenantDetails(
            record=record.public(),
            events=mixed_events(tenant_id),
            buffer=BufferInfo(self.buffers.get(tenant_id, 0), 0),
            usage=self.usage_items.get(tenant_id),
        )

    async def usage(self) -> dict[str, Record]:
        self.calls.append(("usage", None))
        return dict(self.usage_items)

    async def buffered(self, tenant_id: str) -> int | None:
        self._get(tenant_id)
        return self.buffers.get(tenant_id, 0)

    async def audit(self, tenant_id: str | None, *, limit: int) -> list[Record]:
        self.calls.append(("audit", tenant_id))
        chosen = [e for e in self.audit_entries if tenant_id in (None, e.get("tenant"))]
        return chosen[-limit:]

    async def snapshots(self, tenant_id: str) -> list[Record]:
        self.calls.append(("snapshots", tenant_id))
        self._get(tenant_id)
        return list(self.snapshot_items.get(tenant_id, []))

    async def restore(self, tenant_id: str, key: str) -> Record:
        """As the daemon: an unknown key is refused; a restore adds a "restore" entry and
        leaves the tenant running."""
        self.calls.append(("restore", (tenant_id, key)))
        record = self._get(tenant_id)
        history = self.snapshot_items.get(tenant_id, [])
        chosen = next((item for item in history if item["key"] == key), None)
        if chosen is None:
            raise SourceError(f"tenant {tenant_id!r}: no snapshot {key!r}")
        stamp = frozen_clock().strftime("%Y%m%dT%H%M%S.000000Z")
        entry = {
            "key": f"snapshots/history/{stamp}-restore.tar.gz",
            "taken_at": frozen_clock().isoformat().replace("+00:00", "Z"),
            "trigger": "restore",
            "size": chosen["size"],
        }
        self.snapshot_items[tenant_id] = [entry, *history]
        running = replace(record, status=TenantStatus.RUNNING, version=record.version + 1)
        self.upsert(running)
        return {"tenant": running.public(), "restored": chosen}
