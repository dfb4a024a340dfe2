"""Leader election: exactly one replica runs the leader-only loops (idle culler,
reconciler safety net and orphan cleanup).

One ``LeaderElector`` drives a ``LeaseBackend``:
- ``RedisLease`` (embedded default and any shared Redis): ``SET NX PX`` with an
  owner token, renewed and released by fenced Lua scripts.
- ``KubernetesLease`` (``runtime=kubernetes``): a ``coordination.k8s.io/v1``
  Lease with resourceVersion optimistic concurrency, as client-go does it.

Safety rule: a leader steps down as soon as a renewal fails, errors or does not
finish within the renew deadline (two thirds of the lease), so it stops its
leader-only work before any other replica can see the lease as expired. A
replica that lost leadership keeps campaigning (the reference system's
``RunOrDie`` never did).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis

from daemon.cancellation import cancel_and_wait
from daemon.coordination import EXTEND_IF_OWNER_LUA, RELEASE_IF_OWNER_LUA
from daemon.kube.names import LEADER_LEASE
from daemon.metrics import Metrics
from daemon.redis_keys import LEADER_KEY
from daemon.tasks import TaskGroup

if TYPE_CHECKING:
    from daemon.settings import Settings

log = logging.getLogger(__name__)

REDIS_LEADER_KEY = LEADER_KEY


def checkpoint() -> None:
    """Raise CancelledError if this task has been asked to stop.

    redis-py 8.1's asyncio client can complete a command and drop a
    cancellation that arrived meanwhile (reproduced: most cancels landing in a
    command are lost), so every long-running loop calls this once per
    iteration; otherwise a cancelled loop would keep running and its owner's
    ``await task`` would hang."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def default_identity() -> str:
    """Host name (the pod name in Kubernetes), pid, and a random suffix so a
    restarted container never inherits its previous incarnation's lease."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def micro_time_now(now: datetime | None = None) -> datetime:
    """Now, for a Lease's MicroTime fields. kubernetes_asyncio sends a datetime as
    ``isoformat()``, which drops the fraction when it is zero; the apiserver then refuses
    the write (400: a MicroTime has exactly six fractional digits). One microsecond later
    is as good a "now" and always has them."""
    moment = now or datetime.now(UTC)
    return moment.replace(microsecond=1) if moment.microsecond == 0 else moment


class LeaseBackend(Protocol):
    identity: str

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True if we hold it now."""
        ...

    async def renew(self) -> bool:
        """Extend our lease; False if another replica holds it now."""
        ...

    async def release(self) -> None:
        """Give the lease up if we hold it, so a successor need not wait it out."""
        ...

    async def holder(self) -> str | None:
        """Identity of the current holder, None if nobody holds it."""
        ...

    async def close(self) -> None: ...


class RedisLease:
    """Lease = one Redis key holding ``identity/token`` with a PX expiry.

    Expiry is judged by the Redis server's clock alone, so replicas need no
    synchronised clocks."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        identity: str,
        lease_s: float,
        key: str = REDIS_LEADER_KEY,
    ) -> None:
        self.redis, self.identity, self.key = redis, identity, key
        self._lease_ms = max(1, int(lease_s * 1000))
        self._token = f"{identity}/{secrets.token_hex(8)}"
        # Renew and release only while the key still holds our token (fencing).
        self._renew = redis.register_script(EXTEND_IF_OWNER_LUA)
        self._release = redis.register_script(RELEASE_IF_OWNER_LUA)

    async def try_acquire(self) -> bool:
        if await self.redis.set(self.key, self._token, nx=True, px=self._lease_ms):
            return True
        # Still ours (we stepped down after an error but the key survived):
        # take it straight back instead of waiting for our own lease to expire.
        return await self.renew()

    async def renew(self) -> bool:
        return bool(await self._renew(keys=[self.key], args=[self._token, self._lease_ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self._token])

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.rsplit("/", 1)[0]

    async def close(self) -> None:
        """The Redis client belongs to the caller."""


class KubernetesLease:
    """A ``coordination.k8s.io/v1`` Lease, client-go style.

    A candidate never compares its clock with the holder's ``renewTime``: it
    notes when it last saw the record change and treats the lease as expired
    once ``leaseDurationSeconds`` pass on its own monotonic clock without a
    change. Every write is a replace carrying the read's resourceVersion, so
    two candidates racing for an expired lease cannot both win (409)."""

    def __init__(
        self,
        api: Any,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_s: float,
        api_client: Any = None,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_duration_s = max(1, round(lease_s))
        self._api_client = api_client
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    @classmethod
    async def open(cls, settings: Settings, *, identity: str, lease_s: float) -> KubernetesLease:
        from kubernetes_asyncio import client, config  # lazy: only with runtime=kubernetes

        configuration = client.Configuration()
        if settings.kubeconfig:
            await config.load_kube_config(
                config_file=settings.kubeconfig, client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        api_client = client.ApiClient(configuration)
        return cls(
            client.CoordinationV1Api(api_client),
            namespace=settings.daemon_namespace,
            name=LEADER_LEASE,
            identity=identity,
            lease_s=lease_s,
            api_client=api_client,
        )

    async def _read(self) -> Any | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return await self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _write(self, body: Any, *, create: bool) -> bool:
        """Create or replace; False when another replica wrote first (409)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            if create:
                await self.api.create_namespaced_lease(self.namespace, body)
            else:
                await self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _observe(self, lease: Any) -> None:
        spec = lease.spec
        seen = (spec.holder_identity, spec.renew_time, lease.metadata.resource_version)
        if seen != self._observed:
            self._observed = seen
            self._observed_at = time.monotonic()

    async def try_acquire(self) -> bool:
        from kubernetes_asyncio import client

        now = micro_time_now()
        lease = await self._read()
        if lease is None:
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.lease_duration_s,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            return await self._write(body, create=True)
        spec = lease.spec
        if spec.holder_identity == self.identity:
            return await self._renew_lease(lease)
        self._observe(lease)
        duration = spec.lease_duration_seconds or self.lease_duration_s
        if spec.holder_identity and time.monotonic() < self._observed_at + duration:
            return False
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = self.lease_duration_s
        spec.acquire_time = now
        spec.renew_time = now
        spec.lease_transitions = (spec.lease_transitions or 0) + 1
        return await self._write(lease, create=False)

    async def _renew_lease(self, lease: Any) -> bool:
        lease.spec.renew_time = micro_time_now()
        lease.spec.lease_duration_seconds = self.lease_duration_s
        return await self._write(lease, create=False)

    async def renew(self) -> bool:
        lease = await self._read()
        if lease is None or lease.spec.holder_identity != self.identity:
            return False
        return await self._renew_lease(lease)

    async def release(self) -> None:
        lease = await self._read()
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        # client-go's release: empty holder, 1 s duration; candidates take over at once.
        lease.spec.holder_identity = None
        lease.spec.lease_duration_seconds = 1
        lease.spec.renew_time = micro_time_now()
        await self._write(lease, create=False)

    async def holder(self) -> str | None:
        lease = await self._read()
        if lease is None:
            return None
        return lease.spec.holder_identity or None

    async def close(self) -> None:
        if self._api_client is not None:
            await self._api_client.close()


ChangeCallback = Callable[[bool], None]


class LeaderElector:
    """Campaigns for the lease, renews it while leading, and tells the rest of
    the daemon (``leading`` event, ``on_change`` callbacks, the is_leader gauge)."""

    def __init__(
        self,
        backend: LeaseBackend,
        *,
        lease_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.backend = backend
        self.identity = backend.identity
        self.lease_s = lease_s
        # client-go ratios (15 s lease, 10 s renew deadline, 2 s retry).
        self.renew_deadline_s = lease_s * 2 / 3
        self.renew_interval_s = lease_s / 5
        self.retry_interval_s = lease_s / 5
        self.metrics = metrics
        self.leading = asyncio.Event()
        """Set while this replica leads."""
        self._following = asyncio.Event()
        self._following.set()
        self._callbacks: list[ChangeCallback] = []
        self._renewed_at = 0.0
        self.terms = 0
        """How many times this replica became leader (observability, tests)."""

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    def on_change(self, callback: ChangeCallback) -> None:
        """``callback(is_leader)`` on every transition. Keep it quick; do async
        work in a task that awaits ``wait_until_leader``/``wait_until_follower``."""
        self._callbacks.append(callback)

    async def wait_until_leader(self) -> None:
        await self.leading.wait()

    async def wait_until_follower(self) -> None:
        await self._following.wait()

    def _set_leader(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        if leading:
            self.terms += 1
            self._following.clear()
            self.leading.set()
            log.info("%s became leader", self.identity)
        else:
            self.leading.clear()
            self._following.set()
            log.warning("%s is no longer leader", self.identity)
        if self.metrics is not None:
            self.metrics.is_leader.set(1 if leading else 0)
        for callback in list(self._callbacks):
            try:
                callback(leading)
            except Exception:
                log.exception("leadership callback failed")

    async def _attempt(self, call: Callable[[], Awaitable[bool]], timeout: float) -> bool:
        """One backend call; any error or a timeout counts as failure."""
        try:
            async with asyncio.timeout(max(timeout, 0.01)):
                return await call()
        except TimeoutError:
            log.warning("leader lease call timed out after %.2fs", timeout)
        except Exception as exc:
            log.warning("leader lease call failed: %s", exc)
        return False

    def _jittered(self, seconds: float) -> float:
        # Jitter keeps replicas that lost Redis together from retrying in lockstep.
        return seconds * random.uniform(0.8, 1.2)

    async def run(self) -> None:
        """Campaign and renew until cancelled; steps down on the way out."""
        try:
            while True:
                checkpoint()
                if not self.is_leader:
                    started = time.monotonic()
                    if await self._attempt(self.backend.try_acquire, self.retry_interval_s):
                        self._renewed_at = started
                        self._set_leader(True)
                        continue
                    await asyncio.sleep(self._jittered(self.retry_interval_s))
                    continue
                await asyncio.sleep(self.renew_interval_s)
                started = time.monotonic()
                remaining = self._renewed_at + self.renew_deadline_s - started
                if remaining > 0 and await self._attempt(self.backend.renew, remaining):
                    self._renewed_at = started
                else:
                    self._set_leader(False)
        finally:
            self._set_leader(False)

    async def release(self, timeout: float = 2.0) -> None:
        """Step down and free the lease (graceful shutdown) so a successor
        takes over at once instead of after the lease time."""
        self._set_leader(False)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await self.backend.release()


TaskFactory = Callable[[], Coroutine[Any, Any, Any]]


class LeaderTasks:
    """Runs registered loops only while the elector leads: started (in a fresh
    TaskGroup) when leadership is won, cancelled as soon as it is lost. A loop
    that crashes is restarted with backoff while leadership lasts."""

    def __init__(
        self,
        elector: LeaderElector,
        *,
        on_failure: Callable[[str], None] | None = None,
        restart_backoff_s: float = 1.0,
    ) -> None:
        self.elector = elector
        self._factories: dict[str, TaskFactory] = {}
        self._on_failure = on_failure
        self._restart_backoff_s = restart_backoff_s
        self._group: TaskGroup | None = None
        self._running: dict[str, asyncio.Task[Any]] = {}

    def add(self, name: str, factory: TaskFactory) -> None:
        self._factories[name] = factory
        if self._group is not None:
            self._start(self._group, name)

    async def remove(self, name: str) -> None:
        self._factories.pop(name, None)
        task = self._running.pop(name, None)
        if task is not None:
            await cancel_and_wait([task], timeout=5)

    @property
    def running(self) -> list[str]:
        return sorted(name for name, task in self._running.items() if not task.done())

    def _start(self, group: TaskGroup, name: str) -> None:
        self._running[name] = group.spawn(self._supervise(name), name=f"leader:{name}")

    async def _supervise(self, name: str) -> None:
        backoff = self._restart_backoff_s
        while name in self._factories:
            checkpoint()
            try:
                await self._factories[name]()
                log.error("leader-only task %s returned; restarting", name)
            except Exception:
                log.exception("leader-only task %s failed; restarting", name)
                if self._on_failure is not None:
                    self._on_failure(name)
            checkpoint()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def run(self) -> None:
        while True:
            await self.elector.wait_until_leader()
            group = TaskGroup(on_failure=self._on_failure)
            self._group = group
            for name in list(self._factories):
                self._start(group, name)
            try:
                await self.elector.wait_until_follower()
                log.info("leadership lost: stopping %s", ", ".join(self.running) or "nothing")
            finally:
                self._group = None
                self._running.clear()
                await group.close()


async def make_elector(
    *, settings: Settings, redis: aioredis.Redis, metrics: Metrics
) -> LeaderElector:
    """The elector on the lease backend the settings call for."""
    identity = default_identity()
    lease_s = settings.leader_lease_s
    backend: LeaseBackend
    if settings.runtime == "kubernetes":
        backend = await KubernetesLease.open(settings, identity=identity, lease_s=lease_s)
    else:
        backend = RedisLease(redis, identity=identity, lease_s=lease_s)
    return LeaderElector(backend, lease_s=lease_s, metrics=metrics)
