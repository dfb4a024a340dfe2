"""Wake and sleep a tenant's agent, at most one at a time across all replicas.

Wake: Redis wake lock (owner token, kept alive while we work, fenced release)
→ conditional registry transition to ``provisioning`` → runtime.start →
runtime.wait_ready (event-driven inside the runtime) → registry ``running``
with the endpoint → endpoint caches. A replica that finds the lock taken (or
loses a conditional write) does not poll: it subscribes to the tenant's events
and waits for the holder's result, or for the lock's expiry if the holder died.

A failed wake never drops a message (the buffer keeps it); it counts an
attempt on the record, and after ``max_wake_attempts`` (live config) the tenant
goes ``failed`` with the reason until an operator resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from daemon.coordination import Coordination
from daemon.crash_points import crash_point
from daemon.metrics import Metrics
from daemon.model import DETACHED, ConditionFailed, OtmError, Tenant, TenantStatus
from daemon.model_gateway.bot_api_relay import relay_api_root
from daemon.model_gateway.keys import ModelKeys
from daemon.msgpath.pubsub import TenantSignals
from daemon.msgpath.wake_admission import WakeAdmission
from daemon.ports import (
    AgentLaunch,
    CapacityUnavailable,
    Instance,
    InstancePhase,
    Registry,
    Runtime,
)
from daemon.redis_keys import wake_lock_name
from daemon.settings import Settings, wake_timeout_s
from daemon.tasks import TaskGroup
from daemon.telegram import BotApi
from daemon.wake_errors import WakeImpossible, no_bot_token_reason

log = logging.getLogger(__name__)
T = TypeVar("T")

STARTING_NOTICE = "🏗 Starting up, please wait..."
LOCK_TTL_S = 6.0
"""Short, and extended while the holder works: a crashed holder blocks others ≤ 6 s."""
ENDPOINT_TTL_S = 3600.0


class WakeRefused(OtmError):
    """The tenant must not be woken now (suspended, failed, deleted)."""

    def __init__(self, tenant_id: str, status: TenantStatus, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"tenant {tenant_id!r} is {status.value}{detail}")
        self.tenant_id = tenant_id
        self.status = status


class WakeFailed(OtmError):
    """This wake attempt failed; the tenant's messages stay buffered."""


class StateNotSaved(OtmError):
    """The agent stopped but its final state save failed (its run dir is kept)."""


class _Raced(Exception):
    """A conditional write lost to a concurrent change; re-read and retry."""


def lock_name(tenant_id: str) -> str:
    return wake_lock_name(tenant_id)


class EndpointCache:
    """Agent webhook URLs: in-process dict in front of the shared Redis cache.

    The local entry is dropped by events (wake/sleep on any replica publish
    one) and expires after ``local_ttl_s`` in case an event was missed."""

    def __init__(self, coordination: Coordination, local_ttl_s: float = 30.0) -> None:
        self.coordination = coordination
        self.local_ttl_s = local_ttl_s
        self._local: dict[str, tuple[float, str]] = {}

    async def get(self, tenant_id: str) -> str | None:
        entry = self._local.get(tenant_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        endpoint = await self.coordination.get_endpoint(tenant_id)
        if endpoint:
            self._local[tenant_id] = (time.monotonic() + self.local_ttl_s, endpoint)
        return endpoint

    async def set(self, tenant_id: str, endpoint: str) -> None:
        self._local[tenant_id] = (time.monotonic() + self.local_ttl_s, endpoint)
        await self.coordination.set_endpoint(tenant_id, endpoint, ENDPOINT_TTL_S)

    async def drop(self, tenant_id: str, *, only_if: str | None = None) -> None:
        """Forget the endpoint; with ``only_if`` only while it still holds that value."""
        entry = self._local.get(tenant_id)
        if entry is not None and (only_if is None or entry[1] == only_if):
            del self._local[tenant_id]
        await self.coordination.delete_endpoint(tenant_id, only_if=only_if)

    def forget_local(self, tenant_id: str) -> None:
        self._local.pop(tenant_id, None)


@dataclass(eq=False, kw_only=True)
class WakeManager:
    settings: Settings
    registry: Registry
    runtime: Runtime
    coordination: Coordination
    endpoints: EndpointCache
    signals: TenantSignals
    bot_api: BotApi
    metrics: Metrics
    tasks: TaskGroup
    model_keys: ModelKeys | None = None
    """Derives the tenant's model key for its config (None: agents get no key)."""
    admission: WakeAdmission | None = None
    """Cluster-wide cap on concurrent wakes (None: no cap)."""
    _inflight: dict[str, asyncio.Future[Tenant]] = field(
        default_factory=dict, init=False, repr=False
    )
    ready_at: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    """monotonic time a wake on this replica saw the agent ready (first_delivery phase)."""
    on_woken: Callable[[str], None] | None = field(default=None, init=False, repr=False)

    # -- wake -------------------------------------------------------------------
    async def wake(self, tenant_id: str, *, notice_chat: int | None = None) -> Tenant:
        """The tenant running with an endpoint; WakeRefused / WakeFailed / TimeoutError."""
        # Callers on this replica share one wake.
        inflight = self._inflight.get(tenant_id)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[Tenant] = asyncio.get_running_loop().create_future()
        self._inflight[tenant_id] = future
        try:
            tenant = await self._wake(tenant_id, notice_chat)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: each waiter re-raises its own copy
            raise
        finally:
            self._inflight.pop(tenant_id, None)
        future.set_result(tenant)
        return tenant

    async def _wake(self, tenant_id: str, notice_chat: int | None) -> Tenant:
        """Admission first (a running tenant needs none); the wake timeout starts once
        admitted, so time in the admission queue never fails a wake."""
        if self.admission is None:
            return await self._wake_admitted(tenant_id, notice_chat)
        tenant = await self.registry.get(tenant_id)
        usable = await self._usable(tenant)
        if usable is not None:
            return usable
        self._refuse_if_held(tenant)
        async with self.admission.slot(tenant_id):
            return await self._wake_admitted(tenant_id, notice_chat)

    async def _wake_admitted(self, tenant_id: str, notice_chat: int | None) -> Tenant:
        deadline = time.monotonic() + wake_timeout_s(self.settings)
        started = time.monotonic()
        while True:
            tenant = await self.registry.get(tenant_id)
            usable = await self._usable(tenant)
            if usable is not None:
                return usable
            self._refuse_if_held(tenant)
            async with self._locked(tenant_id, deadline) as token:
                if token is None:
                    continue  # the other holder finished (or died): look again
                self.metrics.wake_phase_seconds.labels(phase="lock").observe(
                    time.monotonic() - started
                )
                try:
                    return await self._wake_locked(tenant_id, notice_chat, deadline)
                except _Raced:
                    continue  # the record moved under us (e.g. a PATCH): look again

    async def _usable(self, tenant: Tenant) -> Tenant | None:
        """The tenant if it already runs a ready agent (registry repaired if needed)."""
        if tenant.status != TenantStatus.RUNNING:
            return None
        instance = await self.runtime.get(tenant.tenant_id)
        if instance is None or instance.phase != InstancePhase.READY or not instance.webhook_url:
            return None
        if tenant.endpoint != instance.webhook_url:
            with contextlib.suppress(ConditionFailed):
                tenant = await self.registry.update(
                    tenant.tenant_id,
                    if_version=tenant.version,
                    endpoint=instance.webhook_url,
                    gateway_url=instance.gateway_url,
                    pod_name=instance.name,
                )
        await self.endpoints.set(tenant.tenant_id, instance.webhook_url)
        return tenant

    @staticmethod
    def _refuse_if_held(tenant: Tenant) -> None:
        if tenant.status in (TenantStatus.SUSPENDED, TenantStatus.FAILED, TenantStatus.DELETED):
            raise WakeRefused(tenant.tenant_id, tenant.status, tenant.status_reason)

    async def _wake_locked(
        self, tenant_id: str, notice_chat: int | None, deadline: float
    ) -> Tenant:
        t0 = time.monotonic()
        tenant = await self.registry.get(tenant_id)
        usable = await self._usable(tenant)
        if usable is not None:
            return usable
        self._refuse_if_held(tenant)
        if tenant.status == TenantStatus.STOPPING:
            # A sleeper died half-way (we hold the lock now): finish its stop,
            # final state sync included, before booting from that state.
            await self.runtime.stop(tenant_id, grace_s=self.settings.agent_stop_grace_s)
        # idle, or running/provisioning/stopping left stale by a dead replica.
        try:
            tenant = await self.registry.update(
                tenant_id,
                if_version=tenant.version,
                status=TenantStatus.PROVISIONING,
                status_reason="waking",
            )
        except ConditionFailed:
            raise _Raced from None
        await self._publish(tenant_id, "waking")
        self.metrics.wake_phase_seconds.labels(phase="registry").observe(time.monotonic() - t0)
        try:
            if not tenant.bot_token:
                raise WakeImpossible(no_bot_token_reason(tenant_id))
            return await self._boot(tenant, notice_chat, deadline)
        except asyncio.CancelledError:
            await self._after_failure(tenant_id, "wake cancelled (daemon shutting down)", False)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, WakeImpossible):
                reason = str(exc)  # written for the operator
            log.warning("wake of %s failed: %s", tenant_id, reason)
            # An error no retry can fix fails the tenant now, not after N attempts; a
            # cluster without capacity is no fault of the tenant's: not counted.
            failed = await self._after_failure(
                tenant_id,
                reason,
                not isinstance(exc, CapacityUnavailable),
                final=isinstance(exc, WakeImpossible),
            )
            self.metrics.wakes.labels(outcome="failed" if failed else "retry").inc()
            raise WakeFailed(f"wake of {tenant_id!r} failed: {reason}") from exc

    async def _boot(self, tenant: Tenant, notice_chat: int | None, deadline: float) -> Tenant:
        tenant_id = tenant.tenant_id
        cold = await self.runtime.get(tenant_id) is None
        long_wait, ready = asyncio.Event(), asyncio.Event()
        first_attempt = tenant.wake_attempts == 0
        if cold and first_attempt and notice_chat is not None and tenant.bot_token:
            # Once per start (this wake boots or binds an agent), not per message and not
            # per retry (wake_attempts counts this start's failures); and only when the
            # wait is long: a cold boot, or a warm bind not ready within 2 s.
            self.tasks.spawn(
                self._notice_if_slow(tenant.bot_token, notice_chat, long_wait, ready),
                name=f"notice:{tenant_id}",
            )
        try:
            return await self._start_and_wait(tenant, deadline, long_wait)
        finally:
            ready.set()

    def _api_root(self, tenant: Tenant) -> str | None:
        """A polling tenant's agent talks to the daemon's Bot API relay, which keeps its
        ``setWebhook`` from Telegram (model_gateway/bot_api_relay.py); others: the default.
        Rendered at wake: an ingress switch reaches a running agent at its next wake."""
        gateway_url = self.settings.model_gateway_url
        if tenant.ingress_mode(self.settings.ingress) != "polling" or gateway_url is None:
            return None
        return relay_api_root(gateway_url, tenant.tenant_id)

    async def _start_and_wait(
        self, tenant: Tenant, deadline: float, long_wait: asyncio.Event
    ) -> Tenant:
        tenant_id = tenant.tenant_id
        t1 = time.monotonic()
        started = await self.runtime.start(
            AgentLaunch(
                tenant_id=tenant_id,
                bot_token=tenant.bot_token,
                webhook_secret=tenant.webhook_secret,
                gateway_token=tenant.gateway_token,
                hooks_token=tenant.hooks_token,
                image=tenant.image,
                model_key=(
                    self.model_keys.key_for(tenant_id, tenant.model_key_id)
                    if self.model_keys is not None
                    else ""
                ),
                api_root=self._api_root(tenant),
            )
        )
        if not started.warm:
            long_wait.set()
        t2 = time.monotonic()
        self.metrics.wake_phase_seconds.labels(phase="runtime_start").observe(t2 - t1)
        instance = await self.runtime.wait_ready(tenant_id, max(deadline - t2, 0.1))
        t3 = time.monotonic()
        self.metrics.wake_phase_seconds.labels(phase="ready").observe(t3 - t2)
        crash_point("wake-ready")
        if not instance.webhook_url:
            raise WakeFailed(f"instance {instance.name} is ready without a webhook URL")
        tenant = await self._mark_running(tenant, instance)
        await self.endpoints.set(tenant_id, instance.webhook_url)
        self.ready_at[tenant_id] = t3
        self.metrics.wakes.labels(outcome="ok").inc()
        await self._publish(tenant_id, "running", endpoint=instance.webhook_url)
        log.info("tenant %s running at %s (%.2fs)", tenant_id, instance.name, t3 - t1)
        if self.on_woken is not None:
            self.on_woken(tenant_id)
        return tenant

    async def _mark_running(self, tenant: Tenant, instance: Instance) -> Tenant:
        # if_status, not if_version: an operator's PATCH during the boot is fine,
        # a suspend is not (ConditionFailed: the boot is undone as a failure).
        return await self.registry.update(
            tenant.tenant_id,
            if_status={TenantStatus.PROVISIONING},
            status=TenantStatus.RUNNING,
            status_reason="",
            endpoint=instance.webhook_url,
            gateway_url=instance.gateway_url,
            pod_name=instance.name,
            wake_attempts=0,
            last_active_at=datetime.now(UTC),
        )

    async def _after_failure(
        self, tenant_id: str, reason: str, count: bool, *, final: bool = False
    ) -> bool:
        """Clean up a failed boot; True if the tenant is now ``failed`` (``final``:
        at once, the error cannot go away by retrying)."""
        with contextlib.suppress(Exception):
            await self.runtime.stop(tenant_id, grace_s=min(self.settings.agent_stop_grace_s, 10))
        try:
            tenant = await self.registry.get(tenant_id)
            config = await self.coordination.get_config()
            attempts = tenant.wake_attempts + (1 if count else 0)
            failed = final or attempts >= config.max_wake_attempts
            count_text = "not retried" if final else f"{attempts}/{config.max_wake_attempts}"
            await self.registry.update(
                tenant_id,
                if_status={TenantStatus.PROVISIONING},
                status=TenantStatus.FAILED if failed else TenantStatus.IDLE,
                status_reason=f"wake failed ({count_text}): {reason}",
                wake_attempts=attempts,
                **DETACHED,
            )
        except Exception as exc:
            log.error("could not record failed wake of %s: %s", tenant_id, exc)
            return False
        await self._publish(
            tenant_id, "failed" if failed else "wake_failed", reason=reason, attempts=attempts
        )
        return failed

    async def _notice_if_slow(
        self, bot_token: str, chat_id: int, long_wait: asyncio.Event, ready: asyncio.Event
    ) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (long_wait, ready)]
        try:
            await asyncio.wait(
                waits, timeout=self.settings.warm_notice_after_s, return_when="FIRST_COMPLETED"
            )
        finally:
            for waiter in waits:
                waiter.cancel()
        if ready.is_set():
            return  # answered quickly: no notice
        try:
            await self.bot_api.send_message(bot_token, chat_id, STARTING_NOTICE)
        except Exception as exc:
            log.warning("starting-up notice failed: %s", exc)

    # -- sleep ------------------------------------------------------------------
    async def sleep(self, tenant_id: str) -> Tenant:
        """Stop the agent (final state sync inside runtime.stop) and go idle."""
        return await self._holding_lock(tenant_id, lambda: self._sleep_locked(tenant_id))

    async def while_asleep(self, tenant_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """Put the tenant to sleep (final state save included) and run ``work`` still holding
        its wake lock: no wake starts in between (messages wait in the buffer). StateNotSaved
        (``work`` not run) when the final save failed."""

        async def sleep_then_work() -> T:
            await self._sleep_locked(tenant_id)
            return await work()

        return await self._holding_lock(tenant_id, sleep_then_work)

    async def _holding_lock(self, tenant_id: str, locked: Callable[[], Awaitable[T]]) -> T:
        settings = self.settings
        deadline = time.monotonic() + wake_timeout_s(settings) + settings.agent_stop_grace_s
        while True:
            await self.registry.get(tenant_id)  # TenantNotFound early
            async with self._locked(tenant_id, deadline) as token:
                if token is None:
                    continue
                return await locked()

    async def _sleep_locked(self, tenant_id: str) -> Tenant:
        tenant = await self.registry.get(tenant_id)
        if tenant.status not in (
            TenantStatus.RUNNING,
            TenantStatus.PROVISIONING,
            TenantStatus.STOPPING,
        ):
            await self.runtime.stop(tenant_id, grace_s=self.settings.agent_stop_grace_s)
            return tenant
        tenant = await self.registry.update(
            tenant_id, if_version=tenant.version, status=TenantStatus.STOPPING, status_reason=""
        )
        # Deliveries stop going to a draining agent; they wait for the next wake.
        await self.endpoints.drop(tenant_id)
        await self._publish(tenant_id, "stopping")
        reason = ""
        try:
            await self.runtime.stop(tenant_id, grace_s=self.settings.agent_stop_grace_s)
        except Exception as exc:
            # The agent is stopped; its state is kept where it ran and saved again by
            # the next wake or daemon start. The operator sees why.
            reason = f"final state save failed: {type(exc).__name__}: {exc}"
            log.error("sleep of %s: %s", tenant_id, reason)
        tenant = await self.registry.update(
            tenant_id,
            if_status={TenantStatus.STOPPING},
            status=TenantStatus.IDLE,
            status_reason=reason,
            **DETACHED,
        )
        await self.endpoints.drop(tenant_id)
        await self._publish(tenant_id, "idle", reason=reason or "slept")
        if reason:
            raise StateNotSaved(f"tenant {tenant_id!r} stopped, but its {reason}")
        log.info("tenant %s asleep", tenant_id)
        return tenant

    # -- lock ---------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _locked(self, tenant_id: str, deadline: float) -> AsyncIterator[str | None]:
        """Yield our lock token, kept alive until exit; or None after the holder
        finished or the lock expired (the caller re-reads and retries)."""
        name = lock_name(tenant_id)
        with self.signals.subscribe(tenant_id) as sub:
            token = await self.coordination.acquire_lock(name, LOCK_TTL_S)
            if token is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"tenant {tenant_id!r}: another replica holds its wake lock")
                # Wait for the holder's result event, or for its lock to expire.
                pttl = await self.coordination.redis.pttl(self.coordination._lock_key(name))
                expiry = pttl / 1000 if pttl and pttl > 0 else 0.05
                await sub.next(min(remaining, expiry + 0.01))
                yield None
                return
        done = asyncio.Event()
        keepalive = asyncio.create_task(
            self._keep_lock(name, token, done), name=f"wake-lock:{tenant_id}"
        )
        try:
            yield token
        finally:
            # A flag, not only cancel(): a cancel can be swallowed inside redis-py.
            done.set()
            keepalive.cancel()
            try:
                await self.coordination.release_lock(name, token)
            except Exception as exc:  # expires on its own within LOCK_TTL_S
                log.warning("could not release wake lock of %s: %s", tenant_id, exc)

    async def _keep_lock(self, name: str, token: str, done: asyncio.Event) -> None:
        await self.coordination.keep_alive(name, token, LOCK_TTL_S, done)

    async def _publish(self, tenant_id: str, kind: str, **data: object) -> None:
        await self.coordination.publish_event(tenant_id, kind, **data)
