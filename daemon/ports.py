"""Ports: the interfaces the daemon's core uses, each with a production adapter
and an embedded default. Every adapter passes the same contract suite in
tests/contract/.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from daemon.log_options import DEFAULT_LOG_OPTIONS, LogOptions
from daemon.model import Tenant, TenantStatus


class Registry(Protocol):
    """Durable tenant records. Every write is conditional: two replicas racing
    on the same transition can never both win (the loser gets ConditionFailed)."""

    async def create(self, tenant: Tenant) -> Tenant:
        """Insert a new record; TenantExists if the id is taken."""
        ...

    async def get(self, tenant_id: str) -> Tenant:
        """TenantNotFound if absent."""
        ...

    async def list(self, *, status: TenantStatus | None = None) -> list[Tenant]:
        """All tenants (by id), or those in one status (uses the status index).
        Every record in memory at once: for the admin API's answers; loops that visit
        every tenant use ``scan`` (100,000 records are ~90 MB of Python objects)."""
        ...

    def scan(self, *, status: TenantStatus | None = None) -> AsyncIterator[builtins.list[Tenant]]:
        """The same records as ``list``, a page at a time (a bounded number per page;
        pages in no promised order), each page read by its own request: memory stays
        one page, and other registry calls run between pages. A record written during
        the scan may or may not appear; one present throughout appears exactly once."""
        ...

    async def count_by_status(self) -> dict[TenantStatus, int]:
        """How many tenants are in each status (statuses with none are absent),
        without reading the records."""
        ...

    async def update(
        self,
        tenant_id: str,
        *,
        if_status: Collection[TenantStatus] | None = None,
        if_version: int | None = None,
        **changes: Any,
    ) -> Tenant:
        """Apply ``changes`` (names from model.MUTABLE_FIELDS) atomically when
        the record exists and matches the conditions; bump version and
        updated_at. TenantNotFound if absent, ConditionFailed if a condition
        does not hold, ValueError for an unknown field."""
        ...

    async def touch(self, tenant_id: str, at: datetime) -> None:
        """Move last_active_at forward (never backwards); no-op if absent.
        Does not bump version: activity must not fail lifecycle writes."""
        ...

    async def delete(self, tenant_id: str) -> None:
        """Remove the record; TenantNotFound if absent."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of a tenant's history."""

    key: str
    """Its key relative to the tenant (``snapshots/history/...``): what a restore names."""
    taken_at: datetime
    trigger: str
    """Why it was taken: "sleep", "periodic" or "restore"."""
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "taken_at": self.taken_at.isoformat().replace("+00:00", "Z"),
            "trigger": self.trigger,
            "size": self.size,
        }


@dataclass(frozen=True)
class SnapshotRetention:
    """How much snapshot history a state store keeps per tenant."""

    keep: int = 24
    """Snapshots kept (newest first); 0: no history, only the latest snapshot."""
    max_age_s: float = 7 * 24 * 3600.0
    """Older snapshots are removed (the newest is always kept); 0: no age limit."""


DEFAULT_RETENTION = SnapshotRetention()


class StateStore(Protocol):
    """A tenant's files (``state/...`` and ``workspace/...`` keys) and snapshots.

    Snapshots: the latest one (what the next wake restores) and a history (every save also
    lands there, as do periodic snapshots of a running agent), pruned by a SnapshotRetention."""

    async def put(self, tenant_id: str, key: str, data: bytes) -> None: ...

    async def get(self, tenant_id: str, key: str) -> bytes:
        """KeyError if absent."""
        ...

    async def list(self, tenant_id: str, prefix: str = "") -> list[str]:
        """Keys (relative to the tenant) starting with ``prefix``, sorted."""
        ...

    async def delete(self, tenant_id: str, key: str) -> None:
        """Idempotent."""
        ...

    async def delete_tenant(self, tenant_id: str) -> None:
        """Remove every key of the tenant. Idempotent."""
        ...

    async def save_snapshot(self, tenant_id: str, src_dir: Path, *, trigger: str = "sleep") -> int:
        """Tar ``src_dir`` and store it as the tenant's latest snapshot (and in its history);
        returns bytes stored."""
        ...

    async def restore_snapshot(self, tenant_id: str, dest_dir: Path) -> bool:
        """Unpack the latest snapshot into ``dest_dir``; False if there is none."""
        ...

    async def restore_generation(self, tenant_id: str, dest_dir: Path) -> str:
        """Unpack the latest snapshot into ``dest_dir`` (created); its generation id."""
        ...

    async def save_snapshot_over(
        self, tenant_id: str, src_dir: Path, parent: str, *, trigger: str = "sleep"
    ) -> int:
        """save_snapshot only while the latest snapshot is generation ``parent``
        (StaleSnapshot otherwise): a run replaces only the state it started from."""
        ...

    async def record_snapshot(
        self, tenant_id: str, src_dir: Path, *, trigger: str, exclude: Collection[str] = ()
    ) -> SnapshotInfo | None:
        """Tar ``src_dir`` (without the sub-trees in ``exclude``) into the history only (the
        latest snapshot is untouched: a running agent's periodic snapshot); None when the
        retention keeps no history."""
        ...

    async def list_snapshots(self, tenant_id: str) -> builtins.list[SnapshotInfo]:
        """The tenant's snapshot history, newest first."""
        ...

    async def record_tree(self, tenant_id: str, *, trigger: str) -> SnapshotInfo | None:
        """Pack the tenant's ``state/`` and ``workspace/`` keys (a Kubernetes agent's synced
        files) into the history; None when the retention keeps no history."""
        ...

    async def restore_tree(self, tenant_id: str, key: str) -> SnapshotInfo:
        """Rewrite the tenant's ``state/`` and ``workspace/`` keys from history entry ``key``
        (packed by record_tree): every file put, every key not in it deleted; the history
        gains a "restore" entry. KeyError if ``key`` is not in the history."""
        ...

    async def promote_snapshot(self, tenant_id: str, key: str) -> SnapshotInfo:
        """Make history snapshot ``key`` the latest, as a new generation (a run that started
        from any earlier one can no longer save over it); the history keeps every entry and
        gains a "restore" one. KeyError if ``key`` is not in the history."""
        ...

    async def prune_snapshots(self, tenant_id: str, now: datetime) -> builtins.list[str]:
        """Apply the retention as of ``now``; the keys removed."""
        ...

    async def write_problem(self) -> str:
        """Why a probe object cannot be written and deleted; "" when it can."""
        ...

    async def close(self) -> None: ...


class InstancePhase(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    GONE = "gone"


@dataclass(frozen=True)
class AgentLaunch:
    """Everything a runtime needs to start (or bind a warm instance to) a tenant's agent."""

    tenant_id: str
    bot_token: str
    webhook_secret: str
    gateway_token: str
    hooks_token: str
    image: str | None = None
    model_key: str = ""
    """The tenant's model-gateway key, rendered into its openclaw.json (empty: no key)."""
    api_root: str | None = None
    """The Bot API root the agent calls (a polling tenant's: the daemon's Bot API relay);
    None: the runtime's own (``telegram_api_base``)."""

    def __repr__(self) -> str:
        return f"AgentLaunch(tenant_id={self.tenant_id!r})"


@dataclass(frozen=True)
class Instance:
    """One agent instance as the runtime sees it."""

    name: str
    """Pod name or local instance name."""
    tenant_id: str | None
    """None for an unclaimed warm instance."""
    phase: InstancePhase
    webhook_url: str | None = None
    """Where to POST Telegram updates once ready."""
    gateway_url: str | None = None
    reason: str = ""
    warm: bool = False
    """From the warm pool: unclaimed (``tenant_id`` None) or bound to a tenant at claim (a
    start that returns a warm instance will be quick: no "starting up" notice right away)."""


@dataclass(frozen=True)
class InstanceEvent:
    kind: str
    """"added", "modified" or "deleted"."""
    instance: Instance


@dataclass(frozen=True)
class AgentActivity:
    busy: bool
    pending_turns: int
    last_turn_at: datetime | None


class Runtime(Protocol):
    """Where agents run. Readiness is event-driven (watch/informer or process
    callbacks), never fixed-interval polling by the caller."""

    async def start(self, launch: AgentLaunch) -> Instance:
        """Create (or claim from the warm pool) the tenant's instance, with
        its state restored from the StateStore; returns without waiting for
        readiness. Idempotent: an existing live instance is returned."""
        ...

    async def wait_ready(self, tenant_id: str, timeout: float) -> Instance:
        """Until the instance is READY (returned) or FAILED/GONE (AgentFailed),
        or TimeoutError."""
        ...

    async def stop(self, tenant_id: str, *, grace_s: float) -> None:
        """SIGTERM/delete with a grace period; the final state sync to the
        StateStore completes before this returns. Idempotent."""
        ...

    async def get(self, tenant_id: str) -> Instance | None: ...

    async def list(self) -> list[Instance]: ...

    def watch(self) -> AsyncIterator[InstanceEvent]:
        """Instance changes as they happen (for the reconciler)."""
        ...

    def logs(
        self,
        tenant_id: str,
        *,
        follow: bool,
        since_s: float | None,
        options: LogOptions = DEFAULT_LOG_OPTIONS,
    ) -> AsyncIterator[str]:
        """Agent log lines; KeyError if the tenant has no instance or logs; ValueError
        for options this runtime cannot honour (daemon/log_options.py)."""
        ...

    async def activity(self, tenant_id: str) -> AgentActivity | None:
        """Whether the agent still has turns running (None if unknown/unreachable)."""
        ...

    async def close(self) -> None: ...


class AgentFailed(Exception):
    """The instance failed or vanished while starting."""


class CapacityUnavailable(AgentFailed):
    """No node took the instance within the provisioning budget: the cluster lacks
    capacity (a wake gives up without counting a failed attempt)."""
