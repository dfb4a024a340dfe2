"""Reconciler: keeps the registry and the endpoint cache true to what the
runtime reports, driven by ``Runtime.watch()`` events, with a periodic
safety-net resync for whatever events missed.

Who runs what (decided here, documented in the report):
- Event handling runs on **every** replica. Each replica's runtime watch sees
  the failure, the first conditional write wins (``if_version``) and the others
  get ConditionFailed and do nothing more; so a pod failure reaches the registry
  within one event round trip even while leadership is changing hands.
- The full resync and orphan stops are **leader only** (``run_safety_net`` is
  registered with LeaderTasks): they list everything and stop instances, which
  must not be done twice.

The reconciler only fixes state. Re-waking a tenant whose agent died with
updates still buffered is the delivery path's job; the reconciler nudges it
through ``on_instance_lost`` and publishes an ``instance_lost`` tenant event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.lifecycle.leader import checkpoint
from daemon.metrics import Metrics
from daemon.model import DETACHED, ConditionFailed, Tenant, TenantNotFound, TenantStatus, utcnow
from daemon.msgpath.wake import ENDPOINT_TTL_S
from daemon.ports import Instance, InstanceEvent, InstancePhase, Registry, Runtime
from daemon.redis_keys import crashes_key

log = logging.getLogger(__name__)

# A tenant in one of these may legitimately have an instance; any other
# status (or no record at all) makes its instance an orphan.
ACTIVE_STATUSES = frozenset(
    {TenantStatus.RUNNING, TenantStatus.PROVISIONING, TenantStatus.STOPPING}
)
# An instance on its way up or down: whatever its record says, decide() can only call it
# an orphan, which the leader's resync finds anyway (and stops only after a grace
# period). So events about one read no record: a wake's 4-5 pod events cost no registry
# round trip on any replica, at 10,000 pods neither.
IN_TRANSIT_PHASES = frozenset({InstancePhase.PENDING, InstancePhase.STOPPING})
# How long the endpoint cache keeps an entry the reconciler writes (IP drift):
# the same as the wake path's.
ENDPOINT_CACHE_TTL_S = ENDPOINT_TTL_S
# Crashes counted towards "failed" within this window.
CRASH_WINDOW_S = 600.0
# Grace given to an orphan instance's agent when it is stopped.
ORPHAN_STOP_GRACE_S = 10.0


class Action(StrEnum):
    NOTHING = "nothing"
    LOST = "lost"
    """The tenant's instance failed or vanished: registry → idle, cache entry dropped."""
    DRIFT = "drift"
    """The running instance's webhook URL changed: registry + cache updated."""
    PROMOTE = "promote"
    """A wake died after its instance became ready: provisioning → running."""
    ORPHAN = "orphan"
    """An instance nobody should have: stop it (leader, after a grace period)."""


def _is_current(tenant: Tenant, instance: Instance, *, gone: bool) -> bool:
    """Whether an event is about the instance the record points at, so a late
    event for a previous instance never touches a fresh one."""
    if tenant.pod_name:
        return instance.name == tenant.pod_name
    if gone and tenant.endpoint and instance.webhook_url:
        return instance.webhook_url == tenant.endpoint
    # One instance per tenant: a live one without a recorded name is the current one.
    return True


def decide(
    tenant: Tenant | None,
    instance: Instance | None,
    *,
    deleted: bool,
    now: datetime,
    wake_stale_after_s: float,
    stop_stale_after_s: float,
) -> Action:
    """What to do about one tenant given its record and its instance as the
    runtime last reported it (None, or ``deleted``: no instance any more)."""
    gone = (
        deleted or instance is None or instance.phase in (InstancePhase.FAILED, InstancePhase.GONE)
    )
    exists = instance is not None and not deleted and instance.phase != InstancePhase.GONE
    if tenant is None:
        return Action.ORPHAN if exists else Action.NOTHING
    if tenant.status not in ACTIVE_STATUSES:
        return Action.ORPHAN if exists else Action.NOTHING
    age_s = (now - tenant.updated_at).total_seconds()
    if instance is not None and not _is_current(tenant, instance, gone=gone):
        return Action.NOTHING
    if gone:
        if tenant.status == TenantStatus.RUNNING:
            return Action.LOST
        # A wake in progress handles its own instance's failure (its wait_ready
        # raises); only a wake that evidently died is cleaned up here.
        if tenant.status == TenantStatus.PROVISIONING and age_s > wake_stale_after_s:
            return Action.LOST
        if (
            tenant.status == TenantStatus.STOPPING
            and instance is None
            and age_s > stop_stale_after_s
        ):
            return Action.LOST
        return Action.NOTHING
    assert instance is not None
    if instance.phase != InstancePhase.READY:
        return Action.NOTHING
    if tenant.status == TenantStatus.RUNNING:
        if instance.webhook_url and instance.webhook_url != tenant.endpoint:
            return Action.DRIFT
        return Action.NOTHING
    if tenant.status == TenantStatus.PROVISIONING and age_s > wake_stale_after_s:
        return Action.PROMOTE
    return Action.NOTHING


@dataclass
class _OrphanCandidate:
    instance_name: str
    due: float
    """Monotonic time after which it may be stopped if still an orphan."""


@dataclass(eq=False, kw_only=True)
class Reconciler:
    registry: Registry
    runtime: Runtime
    coordination: Coordination
    metrics: Metrics | None = None
    resync_interval_s: float = 60.0
    wake_stale_after_s: float = 300.0
    stop_stale_after_s: float = 400.0
    orphan_grace_s: float = 30.0
    orphan_stop_grace_s: float = ORPHAN_STOP_GRACE_S
    crash_window_s: float = CRASH_WINDOW_S
    on_instance_lost: Callable[[str], Awaitable[None]] | None = None
    is_leader: Callable[[], bool] = lambda: True
    runtime_sees_all: bool = True
    """False for the local runtime with several replicas on one data dir: each
    sees only its own agents, so "running but no instance here" proves nothing."""
    _orphans: dict[str, _OrphanCandidate] = field(default_factory=dict, init=False, repr=False)
    _kick: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _resync_requested: bool = field(default=False, init=False, repr=False)
    _inflight: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _tenant_locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)
    _tenant_pending: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    # -- decisions applied ---------------------------------------------------
    def _decide(self, tenant: Tenant | None, instance: Instance | None, *, deleted: bool) -> Action:
        return decide(
            tenant,
            instance,
            deleted=deleted,
            now=utcnow(),
            wake_stale_after_s=self.wake_stale_after_s,
            stop_stale_after_s=self.stop_stale_after_s,
        )

    async def _apply(
        self,
        action: Action,
        tenant: Tenant | None,
        instance: Instance | None,
        *,
        tenant_id: str,
        received_at: float | None = None,
    ) -> None:
        if action == Action.NOTHING:
            return
        if action == Action.ORPHAN:
            assert instance is not None
            self._note_orphan(tenant_id, instance)
            return
        assert tenant is not None
        if action == Action.LOST:
            await self._lost(tenant, instance, received_at=received_at)
        elif action == Action.DRIFT:
            assert instance is not None
            await self._drift(tenant, instance)
        elif action == Action.PROMOTE:
            assert instance is not None
            await self._promote(tenant, instance)

    async def _lost(
        self, tenant: Tenant, instance: Instance | None, *, received_at: float | None
    ) -> None:
        tid = tenant.tenant_id
        if instance is None:
            reason = "no instance"
        else:
            reason = instance.reason or f"instance {instance.phase.value}"
        updated = await self._update_if_unchanged(
            tenant,
            tenant.status,
            status=TenantStatus.IDLE,
            status_reason=f"agent lost: {reason}",
            **DETACHED,
        )
        if updated is None:
            return
        if received_at is not None and self.metrics is not None:
            self.metrics.pod_failure_seconds.observe(time.monotonic() - received_at)
        log.warning("tenant %s: agent lost (%s); now idle", tid, reason)
        stale = {e for e in (tenant.endpoint, instance.webhook_url if instance else None) if e}
        for endpoint in stale:
            with contextlib.suppress(Exception):
                await self.coordination.delete_endpoint(tid, only_if=endpoint)
        await self.coordination.publish_event(
            tid,
            "instance_lost",
            reason=reason,
            instance=instance.name if instance else tenant.pod_name,
            previous_status=tenant.status.value,
        )
        if tenant.status == TenantStatus.RUNNING and await self._crash_loop(updated, reason):
            return
        if self.on_instance_lost is not None:
            try:
                await self.on_instance_lost(tid)
            except Exception:
                log.exception("tenant %s: delivery nudge after agent loss failed", tid)

    async def _update_if_unchanged(
        self, tenant: Tenant, expected: TenantStatus, /, **changes: Any
    ) -> Tenant | None:
        """Apply ``changes`` if the record is still the one read (same version, status
        ``expected``); None when another replica (or a wake) changed it first."""
        try:
            return await self.registry.update(
                tenant.tenant_id, if_status={expected}, if_version=tenant.version, **changes
            )
        except (ConditionFailed, TenantNotFound):
            return None

    async def _crash_loop(self, tenant: Tenant, reason: str) -> bool:
        """Count the loss; past the live-config wake limit within the window
        the tenant goes to failed (operator attention) instead of re-waking forever."""
        tid = tenant.tenant_id
        key = crashes_key(tid)
        try:
            redis = self.coordination.redis
            count = int(await redis.incr(key))
            if count == 1:
                await redis.pexpire(key, int(self.crash_window_s * 1000))
            limit = (await self.coordination.get_config()).max_wake_attempts
        except Exception as exc:
            log.warning("tenant %s: cannot count crashes: %s", tid, exc)
            return False
        if count < limit:
            return False
        detail = f"agent lost {count} times within {self.crash_window_s:.0f}s; last: {reason}"
        failed = await self._update_if_unchanged(
            tenant, TenantStatus.IDLE, status=TenantStatus.FAILED, status_reason=detail
        )
        if failed is None:
            return False
        log.error("tenant %s failed: %s", tid, detail)
        await self.coordination.publish_event(tid, "failed", reason=detail)
        with contextlib.suppress(Exception):
            await self.coordination.redis.delete(key)
        return True

    async def _drift(self, tenant: Tenant, instance: Instance) -> None:
        tid = tenant.tenant_id
        assert instance.webhook_url is not None
        moved = await self._update_if_unchanged(
            tenant,
            TenantStatus.RUNNING,
            endpoint=instance.webhook_url,
            gateway_url=instance.gateway_url or tenant.gateway_url,
            pod_name=instance.name,
        )
        if moved is None:
            return
        if tenant.endpoint:
            await self.coordination.delete_endpoint(tid, only_if=tenant.endpoint)
        await self.coordination.set_endpoint(tid, instance.webhook_url, ENDPOINT_CACHE_TTL_S)
        log.info("tenant %s: agent endpoint moved to %s", tid, instance.webhook_url)
        await self.coordination.publish_event(
            tid, "endpoint_changed", endpoint=instance.webhook_url
        )

    async def _promote(self, tenant: Tenant, instance: Instance) -> None:
        tid = tenant.tenant_id
        promoted = await self._update_if_unchanged(
            tenant,
            TenantStatus.PROVISIONING,
            status=TenantStatus.RUNNING,
            status_reason="",
            endpoint=instance.webhook_url,
            gateway_url=instance.gateway_url,
            pod_name=instance.name,
        )
        if promoted is None:
            return
        if instance.webhook_url:
            await self.coordination.set_endpoint(tid, instance.webhook_url, ENDPOINT_CACHE_TTL_S)
        log.info("tenant %s: stalled wake finished by the reconciler; running", tid)
        await self.coordination.publish_event(tid, "running", reason="adopted by reconciler")

    # -- orphans (stopped by the leader only) ------------------------------------
    def _note_orphan(self, tenant_id: str, instance: Instance) -> None:
        if not self.is_leader():
            return
        known = self._orphans.get(tenant_id)
        if known is None or known.instance_name != instance.name:
            self._orphans[tenant_id] = _OrphanCandidate(
                instance.name, time.monotonic() + self.orphan_grace_s
            )
            self._kick.set()

    async def _stop_orphan(self, tenant_id: str, candidate: _OrphanCandidate) -> None:
        # Look again, runtime first then registry: a wake writes provisioning
        # before it starts an instance, so this order never sees a new instance
        # together with a stale record.
        instance = await self.runtime.get(tenant_id)
        if instance is None or instance.name != candidate.instance_name:
            return
        try:
            tenant: Tenant | None = await self.registry.get(tenant_id)
        except TenantNotFound:
            tenant = None
        if self._decide(tenant, instance, deleted=False) != Action.ORPHAN:
            return
        status = tenant.status.value if tenant else "no record"
        log.warning("stopping orphan instance %s (tenant %s: %s)", instance.name, tenant_id, status)
        await self.runtime.stop(tenant_id, grace_s=self.orphan_stop_grace_s)
        if tenant is not None:
            await self.coordination.publish_event(
                tenant_id, "orphan_stopped", instance=instance.name, status=status
            )

    async def _process_due_orphans(self) -> None:
        now = time.monotonic()
        due = [(tid, c) for tid, c in self._orphans.items() if c.due <= now]
        for tid, _ in due:
            del self._orphans[tid]
        results = await asyncio.gather(
            *(self._stop_orphan(tid, c) for tid, c in due), return_exceptions=True
        )
        for (tid, _), result in zip(due, results, strict=True):
            if isinstance(result, Exception):
                log.warning("orphan stop for %s failed: %s", tid, result)

    # -- events (every replica) ---------------------------------------------------
    async def handle_event(self, event: InstanceEvent, received_at: float | None = None) -> None:
        instance = event.instance
        tid = instance.tenant_id
        if tid is None:
            return  # an unclaimed warm instance: the warm pool's business
        if event.kind != "deleted" and instance.phase in IN_TRANSIT_PHASES:
            return
        try:
            tenant: Tenant | None = await self.registry.get(tid)
        except TenantNotFound:
            tenant = None
        deleted = event.kind == "deleted"
        action = self._decide(tenant, instance, deleted=deleted)
        await self._apply(action, tenant, instance, tenant_id=tid, received_at=received_at)
        if action == Action.LOST and not deleted and instance.phase == InstancePhase.FAILED:
            # The failed instance stays behind (a Failed pod): it is an orphan now.
            self._note_orphan(tid, instance)

    async def _handle_in_order(self, tid: str, event: InstanceEvent, received_at: float) -> None:
        lock = self._tenant_locks.setdefault(tid, asyncio.Lock())
        self._tenant_pending[tid] = self._tenant_pending.get(tid, 0) + 1
        try:
            async with lock:  # asyncio locks are FIFO: one tenant's events stay in order
                await self.handle_event(event, received_at)
        except Exception:
            log.exception("reconciling %s after %s event failed", tid, event.kind)
        finally:
            self._tenant_pending[tid] -= 1
            if self._tenant_pending[tid] == 0:
                del self._tenant_pending[tid]
                del self._tenant_locks[tid]

    def _dispatch(self, event: InstanceEvent) -> None:
        tid = event.instance.tenant_id
        if tid is None:
            return
        task = asyncio.create_task(
            self._handle_in_order(tid, event, time.monotonic()), name=f"reconcile:{tid}"
        )
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def run_events(self) -> None:
        """Consume the runtime's instance events until cancelled; a broken watch
        is re-opened with backoff and asks the leader for a full resync."""
        backoff = 0.2
        try:
            while True:
                checkpoint()
                try:
                    async for event in self.runtime.watch():
                        checkpoint()
                        self._dispatch(event)
                        backoff = 0.2
                    log.warning("runtime watch ended; re-opening")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("runtime watch failed: %s; re-opening", exc)
                self.request_resync()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        finally:
            await cancel_and_wait(list(self._inflight), timeout=5)

    # -- safety net (leader) ---------------------------------------------------------
    def request_resync(self) -> None:
        self._resync_requested = True
        self._kick.set()

    async def resync(self) -> None:
        """Compare every active record with the runtime's instances."""
        instances = await self.runtime.list()
        by_tenant = {i.tenant_id: i for i in instances if i.tenant_id is not None}
        # Records a page at a time (one page in memory); only their ids are kept.
        active: set[str] = set()
        for status in ACTIVE_STATUSES:
            async for page in self.registry.scan(status=status):
                for tenant in page:
                    if tenant.tenant_id not in active:
                        active.add(tenant.tenant_id)
                        await self._resync_one(tenant, by_tenant.get(tenant.tenant_id))
        for tid, instance in by_tenant.items():
            if tid in active:
                continue
            try:
                tenant_or_none: Tenant | None = await self.registry.get(tid)
            except TenantNotFound:
                tenant_or_none = None
            if self._decide(tenant_or_none, instance, deleted=False) == Action.ORPHAN:
                self._note_orphan(tid, instance)

    async def _resync_one(self, tenant: Tenant, instance: Instance | None) -> None:
        tid = tenant.tenant_id
        if instance is None:
            # Listed before the record was read? Ask again before calling it lost.
            instance = await self.runtime.get(tid)
        running = tenant.status == TenantStatus.RUNNING
        if instance is None and running and not self.runtime_sees_all:
            return  # maybe another replica's agent
        action = self._decide(tenant, instance, deleted=False)
        try:
            await self._apply(action, tenant, instance, tenant_id=tid)
        except Exception as exc:
            log.warning("resync of %s failed: %s", tid, exc)

    async def run_safety_net(self) -> None:
        """Leader only: full resync now and every ``resync_interval_s`` (or when
        a watch broke), and stop orphans once their grace period is over."""
        self._orphans.clear()
        next_full = time.monotonic()
        while True:
            checkpoint()
            now = time.monotonic()
            if now >= next_full or self._resync_requested:
                self._resync_requested = False
                try:
                    await self.resync()
                except Exception as exc:
                    log.warning("reconciler resync failed: %s", exc)
                next_full = time.monotonic() + self.resync_interval_s
            checkpoint()
            await self._process_due_orphans()
            checkpoint()
            wake_at = min([next_full, *(c.due for c in self._orphans.values())])
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake_at - time.monotonic())):
                    await self._kick.wait()
