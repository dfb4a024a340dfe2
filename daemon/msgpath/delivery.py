"""Delivery workers: drain each tenant's buffer into its agent, in order.

Exactly one worker per tenant across all replicas: a worker first takes the
tenant's delivery lease (a Coordination lock with an owner token, renewed while
it works); every ack is fenced on that token inside the Redis script, so a
worker that lost its lease can never remove an entry. One loop per replica renews
all of its workers' leases in one round trip per tick; a lease found lost cancels
its worker (daemon/msgpath/delivery_worker.py).

An update appended on this replica while it was the only one buffered is handed to
the tenant's live worker with the notify, which then skips the buffer read for it
(``Worker.take_handed`` says when that is safe).

Per entry: endpoint (in-process → Redis cache → registry) → POST to the agent
→ ack only after the agent's 2xx. No endpoint → wake. Failures keep the entry:

- connection error / timeout: drop the cached endpoint (only if unchanged),
  ask the runtime whether the agent moved, otherwise wake it again; backoff.
- 401/403/404: the endpoint is not this tenant's agent as configured (port
  reused, secret/config stale): re-resolve; if it persists the agent is
  restarted (fresh config), and eventually the tenant is marked failed.
- 400/413/422 and other 4xx: this update is poison; after MAX_ATTEMPTS it goes
  to the dead-letter stream so it cannot block the tenant forever.
- 5xx/408/429: the agent cannot take it now; retried with capped backoff,
  dead-lettered only after many attempts.

Workers are spawned on demand (router append, work signal from another
replica, resume), at startup for every tenant in the pending index, and by a
slow safety-net sweep; they exit after IDLE_S without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.model import TenantNotFound, TenantStatus
from daemon.msgpath.buffer import Buffer, BufferedUpdate, lease_key
from daemon.msgpath.delivery_worker import LeaseKeeper, Worker
from daemon.msgpath.forward import AgentConnection, ForwardError, plain_http
from daemon.msgpath.tenant_cache import TenantCache, TenantInfo
from daemon.msgpath.wake import EndpointCache, WakeFailed, WakeManager, WakeRefused
from daemon.ports import InstancePhase, Registry, Runtime
from daemon.redis_keys import delivery_lease_name as lease_name
from daemon.tasks import log_if_failed, repeat_forever
from daemon.telegram import SECRET_HEADER

log = logging.getLogger(__name__)

LEASE_TTL_S = 5.0
"""Renewed every third of it; a crashed holder blocks its tenant at most this long."""
IDLE_S = 30.0
"""A worker without work exits after this long (its lease is released)."""
HEAD_BATCH = 16
"""Buffered updates read per round trip."""
SWEEP_S = 30.0
"""Safety net for lost work signals; normal pickup is event-driven."""
TOUCH_EVERY_S = 5.0
"""Registry last_active_at is moved at most this often per tenant."""
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=3)
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
MAX_ATTEMPTS = 5
"""Rejections (4xx) of one update before it is dead-lettered."""
MAX_UNAVAILABLE_ATTEMPTS = 20
"""5xx/408/429 answers to one update before it is dead-lettered."""
RETRY_AFTER_ERROR_S = 1.0
"""Pause before a worker interrupted by a Redis error tries again."""
MAX_MISROUTED = 5
"""Consecutive 401/403/404 before the agent is restarted with fresh config."""


def backoff_delay(
    attempt: int, *, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S
) -> float:
    """Capped exponential backoff with ±20 % jitter; attempt 0 is the first retry."""
    delay = min(cap, base * (2 ** min(attempt, 30)))
    return float(delay * random.uniform(0.8, 1.2))


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    UNREACHABLE = "unreachable"
    MISROUTED = "misrouted"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (401, 403, 404):
        return Outcome.MISROUTED
    if status in (408, 429) or status >= 500:
        return Outcome.UNAVAILABLE
    return Outcome.REJECTED


def _cancelling() -> bool:
    """Whether the current task is being cancelled (shutdown: leave acks for next time)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Stop(Exception):
    """The worker must stop: tenant on hold/deleted, or lease lost."""

    def __init__(self, reason: str, *, recheck: bool = False) -> None:
        super().__init__(reason)
        self.recheck = recheck


@dataclass(eq=False, kw_only=True)
class DeliveryManager:
    buffer: Buffer
    tenants: TenantCache
    endpoints: EndpointCache
    wake: WakeManager
    registry: Registry
    runtime: Runtime
    coordination: Coordination
    session: aiohttp.ClientSession
    metrics: Metrics
    node_id: str = field(default_factory=lambda: secrets.token_hex(6), init=False)
    _workers: dict[str, Worker] = field(default_factory=dict, init=False, repr=False)
    leases: LeaseKeeper = field(init=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False, repr=False)
    _retries: dict[str, asyncio.TimerHandle] = field(default_factory=dict, init=False, repr=False)
    _last_touch: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _held_elsewhere: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    """Tenants whose lease another replica held when we last tried: monotonic expiry."""
    _signalling: dict[str, bool] = field(default_factory=dict, init=False, repr=False)
    """Tenants with a work signal on its way; True: send one more after it."""
    work_signals_sent: int = field(default=0, init=False)
    _remaining: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    """Buffer length after a worker's last ack or dead letter."""
    _connections: dict[str, AgentConnection] = field(default_factory=dict, init=False, repr=False)
    """Each worker's keep-alive connection to its agent (closed when the worker ends)."""
    _closing: bool = field(default=False, init=False, repr=False)

    # -- spawning -----------------------------------------------------------------
    def notify(
        self,
        tenant_id: str,
        *,
        signal_others: bool = True,
        length: int | None = None,
        appended: BufferedUpdate | None = None,
    ) -> None:
        """New work for a tenant: poke its local worker, or start one. ``length``: the
        buffer's length right after the append that brought the work, if known;
        ``appended``: the update that append buffered."""
        if self._closing:
            return
        worker = self._workers.get(tenant_id)
        if worker is not None:
            if appended is not None and length == 1:
                worker.handed = appended
            worker.poke.set()
            return
        if signal_others and self._held_elsewhere.get(tenant_id, 0.0) > time.monotonic():
            # Another replica delivers (it held the lease a moment ago): tell it, without a
            # worker of our own that would only find the lease taken (three round trips
            # per update). Once the lease could have expired, a worker tries again.
            if length is None or length <= 1:
                self._signal_work(tenant_id)
            # Otherwise an earlier update was still buffered when this one was appended:
            # the script that removes it counts this one, and a worker that sees entries
            # remain reads on (_drain), so no signal is needed.
            return
        worker = Worker()
        worker.poke.set()
        self._workers[tenant_id] = worker
        self._spawn(self._run(tenant_id, worker, signal_others), f"delivery:{tenant_id}")

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(self.coordination, LEASE_TTL_S, self._spawn)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        log_if_failed(task, self.metrics.background_task_failures.labels(task="delivery").inc)

    def _signal_work(self, tenant_id: str) -> None:
        """Publish that the tenant has work; calls during a publish are coalesced into
        one more publish after it (sent after their appends: none goes unseen)."""
        if tenant_id in self._signalling:
            self._signalling[tenant_id] = True
            return
        self._signalling[tenant_id] = False
        self._spawn(self._send_work_signals(tenant_id), f"work-signal:{tenant_id}")

    async def _send_work_signals(self, tenant_id: str) -> None:
        try:
            while True:
                await self.buffer.signal_work(tenant_id, self.node_id)
                self.work_signals_sent += 1
                if not self._signalling.get(tenant_id):
                    return
                self._signalling[tenant_id] = False
        except (aioredis.RedisError, OSError) as exc:
            log.warning("cannot signal %s's work: %s; retrying", tenant_id, exc)
            self._held_elsewhere.pop(tenant_id, None)
            self._retry_later(tenant_id, RETRY_AFTER_ERROR_S)
        finally:
            self._signalling.pop(tenant_id, None)

    def notify_if_pending(self, tenant_id: str) -> None:
        self._spawn(self._notify_if_pending(tenant_id), f"delivery-check:{tenant_id}")

    async def _notify_if_pending(self, tenant_id: str) -> None:
        try:
            pending = await self.buffer.check_pending(tenant_id)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("cannot look at %s's buffer: %s; retrying", tenant_id, exc)
            self._retry_later(tenant_id, RETRY_AFTER_ERROR_S)
            return
        if pending > 0:
            self.notify(tenant_id, signal_others=False)

    def on_work_signal(self, tenant_id: str, origin: str) -> None:
        if origin != self.node_id:
            self.notify(tenant_id, signal_others=False)

    def on_event(self, tenant_id: str, event: dict[str, Any]) -> None:
        self.tenants.invalidate(tenant_id)
        if event.get("kind") in ("created", "running"):
            # Its first webhooks need not wait for the read budget of never-seen ids
            # (1,000 tenants created at once were answered 503 for ~20 s).
            self.tenants.mark_known(tenant_id)
        self.endpoints.forget_local(tenant_id)
        if event.get("kind") in ("resumed", "deleted"):
            self.notify_if_pending(tenant_id)

    def request_sweep(self) -> None:
        self._spawn(self.sweep(), "delivery-sweep-once")

    async def sweep(self) -> int:
        """Start workers for every tenant with buffered work; returns how many."""
        tenants = await self.buffer.pending_tenants()
        for tenant_id in tenants:
            if tenant_id not in self._workers:
                self.notify_if_pending(tenant_id)
        return len(tenants)

    async def sweep_forever(self) -> None:
        await repeat_forever(self.sweep, SWEEP_S, "delivery sweep")

    def _retry_later(self, tenant_id: str, delay: float) -> None:
        if tenant_id in self._retries or self._closing:
            return

        def fire() -> None:
            self._retries.pop(tenant_id, None)
            self.notify_if_pending(tenant_id)

        self._retries[tenant_id] = asyncio.get_running_loop().call_later(delay, fire)

    async def close(self) -> None:
        self._closing = True
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for worker in self._workers.values():
            worker.poke.set()  # idle workers see _closing at once
        stuck = await cancel_and_wait(list(self._tasks), timeout=10)
        for task in stuck:
            log.error("task %s did not stop", task.get_name())

    # -- one worker -------------------------------------------------------------------
    async def _run(self, tenant_id: str, worker: Worker, signal_others: bool) -> None:
        name = lease_name(tenant_id)
        recheck = False
        try:
            try:
                token = await self.coordination.acquire_lock(name, LEASE_TTL_S)
                if token is None:
                    # Another worker (maybe on another replica) delivers; make sure it
                    # knows, and look again when its lease would expire (if it died).
                    if signal_others:
                        await self.buffer.signal_work(tenant_id, self.node_id)
                    pttl = await self.coordination.redis.pttl(lease_key(tenant_id))
                    wait = pttl / 1000 if pttl > 0 else 0.1
                    self._held_elsewhere[tenant_id] = time.monotonic() + wait
                    self._retry_later(tenant_id, wait + 0.05)
                    return
                self._held_elsewhere.pop(tenant_id, None)
            except (aioredis.RedisError, OSError) as exc:
                # Redis restarting or unreachable: nothing was taken; come back.
                log.warning("delivery to %s not started: %s; retrying", tenant_id, exc)
                self._retry_later(tenant_id, RETRY_AFTER_ERROR_S)
                return
            task = asyncio.current_task()
            assert task is not None
            lease = self.leases.hold(tenant_id, token, task)
            try:
                recheck = await self._drain(tenant_id, token, worker)
            except _Stop as stop:
                log.info("delivery to %s paused: %s", tenant_id, stop)
                recheck = stop.recheck
            except (aioredis.RedisError, OSError) as exc:
                # Redis restarting or unreachable: the buffer is intact; come back.
                log.warning("delivery to %s interrupted: %s; retrying", tenant_id, exc)
                self._retry_later(tenant_id, RETRY_AFTER_ERROR_S)
            finally:
                self.leases.forget(tenant_id, lease)
                worker.stop_timer()
                if self._workers.get(tenant_id) is worker:
                    del self._workers[tenant_id]
                self._remaining.pop(tenant_id, None)
                # Before the release: the tenant's next worker starts with its own.
                connection = self._connections.pop(tenant_id, None)
                if connection is not None:
                    await connection.close()
                with contextlib.suppress(Exception):
                    await self.coordination.release_lock(name, token)
        finally:
            if self._workers.get(tenant_id) is worker:
                del self._workers[tenant_id]
        # Work appended between our last look and the release would be orphaned.
        if recheck and not self._closing:
            self.notify_if_pending(tenant_id)

    async def _drain(self, tenant_id: str, token: str, worker: Worker) -> bool:
        """Deliver until the buffer stays empty for IDLE_S; True: re-check after release."""
        poke = worker.poke
        while not self._closing:
            poke.clear()
            handed = worker.take_handed()
            batch = [handed] if handed else await self.buffer.head(tenant_id, HEAD_BATCH)
            worker.saw(batch)
            if batch:
                # Delivered in order, acked together: one Redis round trip per batch, not
                # per update. (A crash before the ack redelivers them; agents drop
                # update_ids they already have.)
                unacked: list[BufferedUpdate] = []
                self._remaining[tenant_id] = 0
                try:
                    for update in batch:
                        if self._closing:
                            break
                        if await self._deliver(tenant_id, token, update, unacked):
                            unacked.append(update)
                finally:
                    if unacked and not _cancelling():
                        await self._ack(tenant_id, token, unacked)
                if (
                    len(batch) == HEAD_BATCH
                    or poke.is_set()
                    or self._remaining.pop(tenant_id, 0) > 0
                ):
                    continue  # more is (or may be) buffered
                # A short batch was all there was when it was read, and every append
                # since then set the poke: no need to read the (empty) buffer again.
            else:
                self.metrics.set_buffered(tenant_id, 0)
            if not await worker.wait_for_work(IDLE_S):
                # Leave the dict now (synchronously): a notify from here on
                # starts a fresh worker instead of poking a dying one.
                if self._workers.get(tenant_id) is worker:
                    del self._workers[tenant_id]
                return True
        return False

    async def _tenant(self, tenant_id: str) -> TenantInfo:
        info = await self.tenants.get(tenant_id)
        if info is None:
            log.warning("tenant %s is gone; dropping its buffered updates", tenant_id)
            await self.buffer.purge(tenant_id)
            raise _Stop("tenant deleted")
        if info.status in (TenantStatus.SUSPENDED, TenantStatus.FAILED):
            raise _Stop(f"tenant {info.status.value}")
        return info

    async def _endpoint(self, tenant_id: str) -> str | None:
        endpoint = await self.endpoints.get(tenant_id)
        if endpoint:
            return endpoint
        try:
            tenant = await self.registry.get(tenant_id)
        except TenantNotFound:
            return None
        if tenant.status == TenantStatus.RUNNING and tenant.endpoint:
            await self.endpoints.set(tenant_id, tenant.endpoint)
            return tenant.endpoint
        return None

    async def _deliver(
        self, tenant_id: str, token: str, update: BufferedUpdate, unacked: list[BufferedUpdate]
    ) -> bool:
        """Deliver one update: True once the agent has it (the caller acks it with its
        batch), False when it was dead-lettered. Before anything slow (a wake, a
        backoff) the batch's delivered updates are acked, so few wait for their ack."""
        failures = 0
        misrouted = 0
        force_wake = False
        while True:
            if self._closing:
                raise _Stop("daemon shutting down")
            info = await self._tenant(tenant_id)
            # After a dead endpoint the registry's copy is stale too: go to wake,
            # which checks the runtime and restarts the agent if it is gone.
            endpoint = None if force_wake else await self._endpoint(tenant_id)
            force_wake = False
            if endpoint is None:
                await self._ack(tenant_id, token, unacked)
                try:
                    tenant = await self.wake.wake(tenant_id, notice_chat=update.chat_id())
                except WakeRefused as exc:
                    raise _Stop(str(exc)) from None
                except TenantNotFound:
                    self.tenants.invalidate(tenant_id)
                    continue
                except (WakeFailed, TimeoutError, Exception) as exc:
                    self.metrics.delivery_failures.labels(reason="wake").inc()
                    log.warning("delivery to %s waits: %s", tenant_id, exc)
                    self.tenants.invalidate(tenant_id)
                    await asyncio.sleep(backoff_delay(failures + 3))
                    failures += 1
                    continue
                endpoint = tenant.endpoint
                if not endpoint:
                    continue
            outcome, status = await self._post(
                tenant_id, endpoint, update.body, info.webhook_secret
            )
            if outcome is Outcome.DELIVERED:
                ready_at = self.wake.ready_at.pop(tenant_id, None)
                if ready_at is not None:
                    self.metrics.wake_phase_seconds.labels(phase="first_delivery").observe(
                        time.monotonic() - ready_at
                    )
                return True
            self.metrics.delivery_failures.labels(reason=outcome.value).inc()
            await self._ack(tenant_id, token, unacked)
            if outcome is Outcome.UNREACHABLE:
                force_wake = await self._unreachable(tenant_id, endpoint)
            elif outcome is Outcome.MISROUTED:
                misrouted += 1
                log.warning("agent of %s answered %s: endpoint/config stale", tenant_id, status)
                self.tenants.invalidate(tenant_id)
                await self.endpoints.drop(tenant_id, only_if=endpoint)
                if misrouted % MAX_MISROUTED == 0:
                    log.error("agent of %s keeps refusing updates; restarting it", tenant_id)
                    await self.wake.sleep(tenant_id)
            else:
                if status >= 500:
                    # The agent's own failure: a rollout's health gate counts these per image.
                    await self.coordination.publish_event(tenant_id, "agent_5xx", status=status)
                tries = await self.buffer.record_failure(tenant_id, update.entry_id)
                limit = MAX_ATTEMPTS if outcome is Outcome.REJECTED else MAX_UNAVAILABLE_ATTEMPTS
                log.warning(
                    "agent of %s answered %s to update %s (attempt %d/%d)",
                    tenant_id,
                    status,
                    update.update_id,
                    tries,
                    limit,
                )
                if tries >= limit:
                    await self._dead_letter(tenant_id, token, update, f"HTTP {status}", tries)
                    return False
            await asyncio.sleep(backoff_delay(failures))
            failures += 1

    async def _post(
        self, tenant_id: str, endpoint: str, body: bytes, secret: bytes
    ) -> tuple[Outcome, int]:
        started = time.perf_counter()
        if plain_http(endpoint):
            connection = self._connections.get(tenant_id)
            if connection is None or connection.endpoint != endpoint:
                if connection is not None:
                    await connection.close()
                connection = AgentConnection(endpoint)
                self._connections[tenant_id] = connection
            try:
                status = await connection.post(body, SECRET_HEADER, secret.decode())
            except ForwardError:
                return Outcome.UNREACHABLE, 0
        else:
            headers = {"Content-Type": "application/json", SECRET_HEADER: secret.decode()}
            try:
                async with self.session.post(
                    endpoint, data=body, headers=headers, timeout=FORWARD_TIMEOUT
                ) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                return Outcome.UNREACHABLE, 0
        self.metrics.forward_seconds.observe(time.perf_counter() - started)
        return classify(status), status

    async def _ack(self, tenant_id: str, token: str, updates: list[BufferedUpdate]) -> None:
        """Ack delivered updates (fenced on the lease); empties ``updates``."""
        if not updates:
            return
        remaining = await self.buffer.ack_many(tenant_id, [u.entry_id for u in updates], token)
        count = len(updates)
        updates.clear()
        if remaining < 0:
            raise _Stop("delivery lease lost")
        self._remaining[tenant_id] = remaining
        self.metrics.deliveries.inc(count)
        self.metrics.set_buffered(tenant_id, remaining)
        now = time.monotonic()
        if now - self._last_touch.get(tenant_id, 0.0) >= TOUCH_EVERY_S:
            self._last_touch[tenant_id] = now
            try:
                await self.registry.touch(tenant_id, datetime.now(UTC))
            except Exception as exc:
                log.warning("activity of %s not recorded: %s", tenant_id, exc)

    async def _unreachable(self, tenant_id: str, endpoint: str) -> bool:
        """Forget a dead endpoint; adopt the runtime's if the agent merely moved.
        True when the agent is not ready at all (the caller wakes it)."""
        await self.endpoints.drop(tenant_id, only_if=endpoint)
        try:
            instance = await self.runtime.get(tenant_id)
        except Exception as exc:
            log.warning("runtime lookup for %s failed: %s", tenant_id, exc)
            return False
        if instance is None or instance.phase != InstancePhase.READY or not instance.webhook_url:
            return True
        if instance.webhook_url != endpoint:
            await self.endpoints.set(tenant_id, instance.webhook_url)
        return False

    async def _dead_letter(
        self, tenant_id: str, token: str, update: BufferedUpdate, reason: str, attempts: int
    ) -> None:
        remaining = await self.buffer.dead_letter(tenant_id, update, token, reason, attempts)
        if remaining < 0:
            raise _Stop("delivery lease lost")
        self._remaining[tenant_id] = remaining
        self.metrics.delivery_failures.labels(reason="dead_letter").inc()
        self.metrics.set_buffered(tenant_id, remaining)
        log.error(
            "update %s of %s dead-lettered after %d attempts (%s)",
            update.update_id,
            tenant_id,
            attempts,
            reason,
        )
        await self.coordination.publish_event(
            tenant_id, "dead_letter", update_id=update.update_id, reason=reason
        )
