"""Idle culler (leader only): sleeps running tenants whose idle deadline
(``last_active_at`` + the tenant's ``idle_timeout_s``, else the live-config
default) has passed and whose agent has no turn running.

It does not tick: it sleeps until the earliest known deadline. Deadlines only
move later on their own (activity touches ``last_active_at``), and every
acting decision re-reads the record, so waking early is never wrong. What can
bring a deadline *forward* — a tenant becoming running, a shorter per-tenant
timeout, a shorter default — arrives as a tenant event or a live-config change,
which re-reads that tenant (or everything). A capped interval re-lists all
running tenants as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from daemon.agent.activity import trusted_turn_time
from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination, LiveConfig
from daemon.lifecycle.leader import checkpoint
from daemon.model import ConditionFailed, Tenant, TenantNotFound, TenantStatus, utcnow
from daemon.ports import Registry, Runtime

log = logging.getLogger(__name__)

SleepFn = Callable[[str], Awaitable[object]]
# How long an activity probe may take before the agent counts as not busy.
ACTIVITY_TIMEOUT_S = 5.0
# After a failed sleep, try that tenant again this much later.
RETRY_AFTER_S = 30.0


def idle_deadline(tenant: Tenant, config: LiveConfig) -> datetime:
    timeout = tenant.idle_timeout_s or config.default_idle_timeout_s
    # Never later than now + timeout: a far-future record (written by an older
    # version from an agent's report) must not exempt the tenant forever.
    return min(tenant.last_active_at, utcnow()) + timedelta(seconds=timeout)


@dataclass(eq=False, kw_only=True)
class Culler:
    registry: Registry
    runtime: Runtime
    coordination: Coordination
    sleep: SleepFn
    events: Callable[[], AsyncIterator[dict[str, Any]]] | None = None
    """Tenant events of every replica: the daemon's one subscriber (TenantSignals.events);
    None: a subscription of its own."""
    max_interval_s: float = 60.0
    max_concurrent_sleeps: int = 16
    retry_after_s: float = RETRY_AFTER_S
    culled: int = field(default=0, init=False)
    """Tenants this culler has put to sleep (observability, tests)."""

    def __post_init__(self) -> None:
        self._subscribe = self.events or self.coordination.subscribe_events
        self._config = LiveConfig()
        self._deadlines: dict[str, datetime] = {}
        self._retry_at: dict[str, datetime] = {}
        self._kicked: set[str] = set()
        self._refresh_all = True
        self._kick = asyncio.Event()
        self._sleeping: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(self.max_concurrent_sleeps)

    @property
    def deadlines(self) -> dict[str, datetime]:
        return dict(self._deadlines)

    def kick(self, tenant_id: str | None = None) -> None:
        """Re-read one tenant (or, with None, every running tenant) now."""
        if tenant_id is None:
            self._refresh_all = True
        else:
            self._kicked.add(tenant_id)
        self._kick.set()

    def _track(self, tenant: Tenant) -> None:
        tid = tenant.tenant_id
        if tenant.status == TenantStatus.RUNNING:
            deadline = idle_deadline(tenant, self._config)
            # After a failed sleep, not before the retry time (no hot loop on re-reads).
            self._deadlines[tid] = max(deadline, self._retry_at.get(tid, deadline))
        else:
            self._deadlines.pop(tid, None)
            self._retry_at.pop(tid, None)

    async def _refresh(self) -> None:
        if self._refresh_all:
            self._refresh_all = False
            self._kicked.clear()
            self._config = await self.coordination.get_config()
            # Rebuilt page by page (only deadlines kept); a failed read keeps the old ones.
            deadlines, self._deadlines = self._deadlines, {}
            try:
                async for page in self.registry.scan(status=TenantStatus.RUNNING):
                    for tenant in page:  # only the deadline is kept, not the record
                        self._track(tenant)
            except BaseException:
                self._deadlines = deadlines
                raise
            return
        kicked, self._kicked = self._kicked, set()
        for tid in kicked:
            try:
                self._track(await self.registry.get(tid))
            except TenantNotFound:
                self._deadlines.pop(tid, None)

    async def _check(self, tenant_id: str) -> None:
        """The deadline passed by our last reading: look again, then act."""
        try:
            tenant = await self.registry.get(tenant_id)
        except TenantNotFound:
            self._deadlines.pop(tenant_id, None)
            return
        self._track(tenant)
        now = utcnow()
        deadline = self._deadlines.get(tenant_id)
        if deadline is None or deadline > now:
            return
        activity = None
        try:
            async with asyncio.timeout(ACTIVITY_TIMEOUT_S):
                activity = await self.runtime.activity(tenant_id)
        except Exception as exc:
            log.info("tenant %s: activity probe failed (%s); treating as not busy", tenant_id, exc)
        if activity is not None and (activity.busy or activity.pending_turns > 0):
            # A turn still running is activity: push the deadline out.
            await self.registry.touch(tenant_id, now)
            self._deadlines[tenant_id] = idle_deadline(_with_last_active(tenant, now), self._config)
            log.debug("tenant %s idle but busy; deadline extended", tenant_id)
            return
        # Reported by the agent (tenant code): validated and clamped to now again here,
        # whatever the runtime's client did.
        last_turn = trusted_turn_time(activity.last_turn_at, now) if activity else None
        if last_turn is not None and last_turn > tenant.last_active_at:
            later = _with_last_active(tenant, last_turn)
            if idle_deadline(later, self._config) > now:
                await self.registry.touch(tenant_id, last_turn)
                self._deadlines[tenant_id] = idle_deadline(later, self._config)
                return
        self._deadlines.pop(tenant_id, None)
        self._start_sleep(tenant)

    async def _check_contained(self, tenant_id: str) -> None:
        """One tenant's failure (a bad record, a registry hiccup) must not stop the
        culler for every other tenant: log it and look at that tenant again later."""
        try:
            await self._check(tenant_id)
        except Exception as exc:
            log.warning("culler: checking tenant %s failed: %r; retrying later", tenant_id, exc)
            self._retry_at[tenant_id] = utcnow() + timedelta(seconds=self.retry_after_s)
            self._deadlines[tenant_id] = self._retry_at[tenant_id]

    def _start_sleep(self, tenant: Tenant) -> None:
        tid = tenant.tenant_id
        if tid in self._sleeping:
            return
        task = asyncio.create_task(self._sleep_one(tenant), name=f"cull:{tid}")
        self._sleeping[tid] = task
        task.add_done_callback(lambda _: self._sleeping.pop(tid, None))

    async def _sleep_one(self, tenant: Tenant) -> None:
        tid = tenant.tenant_id
        async with self._slots:
            idle_s = (utcnow() - tenant.last_active_at).total_seconds()
            log.info("tenant %s idle for %.0fs: sleeping it", tid, idle_s)
            try:
                await self.sleep(tid)
            except (ConditionFailed, TenantNotFound):
                return  # woken, stopped or deleted meanwhile: nothing to cull
            except Exception as exc:
                log.warning("sleeping idle tenant %s failed: %s; retrying later", tid, exc)
                self._retry_at[tid] = utcnow() + timedelta(seconds=self.retry_after_s)
                self._deadlines[tid] = self._retry_at[tid]
                return
            finally:
                # Done here, not in a done-callback: the main loop must count this
                # tenant's (retry) deadline as soon as it wakes up from the kick.
                self._sleeping.pop(tid, None)
                self._kick.set()
            self.culled += 1
            self._retry_at.pop(tid, None)
            if tenant.endpoint:
                with contextlib.suppress(Exception):
                    await self.coordination.delete_endpoint(tid, only_if=tenant.endpoint)
            await self.coordination.publish_event(tid, "culled", idle_s=round(idle_s, 1))

    async def _follow_events(self) -> None:
        """Tenant events (any replica) may bring a deadline forward: re-read that tenant."""
        while True:
            checkpoint()
            try:
                async for event in self._subscribe():
                    checkpoint()
                    tid = event.get("tenant_id")
                    if isinstance(tid, str) and tid not in self._sleeping:
                        self.kick(tid)
            except Exception as exc:
                log.warning("culler event subscription failed: %s", exc)
            self.kick()  # events may have been missed
            await asyncio.sleep(1.0)

    async def _follow_config(self) -> None:
        while True:
            checkpoint()
            try:
                async for _config in self.coordination.watch_config():
                    checkpoint()
                    self.kick()
            except Exception as exc:
                log.warning("culler config subscription failed: %s", exc)
            await asyncio.sleep(1.0)

    async def run(self) -> None:
        """Leader only. Cancel to stop; sleeps in flight are cancelled too."""
        self._refresh_all = True
        followers = [
            asyncio.create_task(self._follow_events(), name="culler-events"),
            asyncio.create_task(self._follow_config(), name="culler-config"),
        ]
        try:
            next_full = time.monotonic() + self.max_interval_s
            while True:
                checkpoint()
                if time.monotonic() >= next_full:
                    self._refresh_all = True
                if self._refresh_all:
                    next_full = time.monotonic() + self.max_interval_s
                self._kick.clear()
                await self._refresh()
                checkpoint()
                now = utcnow()
                for tid in [t for t, d in self._deadlines.items() if d <= now]:
                    if tid not in self._sleeping:
                        await self._check_contained(tid)
                        checkpoint()
                wait_s = next_full - time.monotonic()
                upcoming = [d for t, d in self._deadlines.items() if t not in self._sleeping]
                if upcoming:
                    wait_s = min(wait_s, (min(upcoming) - utcnow()).total_seconds())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wait_s)):
                        await self._kick.wait()
        finally:
            # Re-cancelling and bounded: redis-py may swallow a cancellation (see checkpoint).
            await cancel_and_wait([*followers, *self._sleeping.values()], timeout=5)


def _with_last_active(tenant: Tenant, at: datetime) -> Tenant:
    from dataclasses import replace

    return replace(tenant, last_active_at=at)
