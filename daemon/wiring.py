"""The composition root's builders: adapters chosen by settings, and every background
loop built from explicit parts (as kopf's ``spawn_tasks`` builds its root tasks).

Each loop takes its collaborators as constructor arguments; only this module (with
app.py and message_path.py) reads them from the aiohttp app. Adapter imports are lazy
so the embedded default never loads boto3 or kubernetes_asyncio it does not use.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from daemon import app_keys as keys
from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.lifecycle.culler import Culler
from daemon.lifecycle.leader import LeaderTasks, TaskFactory, make_elector
from daemon.lifecycle.rollout import RolloutController, Rollouts, RolloutStore
from daemon.lifecycle.tenant_metrics import TenantGauge
from daemon.lifecycle.tree_snapshots import TreeSnapshots
from daemon.metrics import Metrics
from daemon.msgpath.message_path import message_path_ctx
from daemon.msgpath.poller import PollerManager
from daemon.ports import Registry, Runtime, SnapshotRetention, StateStore
from daemon.reconciler import Reconciler
from daemon.settings import Settings, longest_wake_s
from daemon.telegram import webhook_url

if TYPE_CHECKING:
    from daemon.kube.warm_pool import WarmPool

log = logging.getLogger(__name__)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


async def make_registry(settings: Settings) -> Registry:
    if settings.registry == "dynamodb":
        from daemon.adapters.registry_dynamodb import DynamoRegistry

        return await DynamoRegistry.open(
            table=settings.dynamodb_table,
            region=settings.aws_region,
            endpoint_url=settings.dynamodb_endpoint_url,
        )
    from daemon.adapters.registry_sqlite import SqliteRegistry

    return SqliteRegistry(settings.sqlite_path)


async def make_state_store(settings: Settings) -> StateStore:
    if settings.state_store == "s3":
        from daemon.adapters.state_s3 import S3StateStore

        return await S3StateStore.open(
            bucket=settings.s3_bucket,
            region=settings.aws_region,
            endpoint_url=settings.s3_endpoint_url,
            retention=snapshot_retention(settings),
        )
    from daemon.adapters.state_dir import DirStateStore

    return DirStateStore(settings.state_dir, retention=snapshot_retention(settings))


def snapshot_retention(settings: Settings) -> SnapshotRetention:
    return SnapshotRetention(
        keep=settings.snapshot_history_keep, max_age_s=settings.snapshot_history_max_age_s
    )


def agent_webhook_urls(
    settings: Settings, router_url: Callable[[], str | None]
) -> Callable[[str], str]:
    """What an agent registers with Telegram (setWebhook): the public router URL, else
    the local router's (known only once its listener started, hence the callable)."""

    def webhook_url_for(tenant_id: str) -> str:
        base = settings.public_base_url or router_url() or "http://127.0.0.1"
        return webhook_url(base, tenant_id)

    return webhook_url_for


async def make_runtime(
    *,
    settings: Settings,
    state_store: StateStore,
    coordination: Coordination,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    webhook_url_for: Callable[[str], str],
) -> tuple[Runtime, WarmPool | None]:
    """The runtime adapter, and its warm pool (Kubernetes only) for ``warm_pool_ctx``."""
    if settings.runtime == "kubernetes":
        from daemon.adapters.runtime_k8s import KubernetesRuntime

        k8s = await KubernetesRuntime.open(
            settings=settings,
            coordination=coordination,
            session=session,
            metrics=metrics,
            webhook_url_for=webhook_url_for,
            state_store=state_store,
        )
        return k8s, k8s.warm_pool
    from daemon.adapters.local.runtime import LocalRuntime
    from daemon.adapters.local.warm_pool import LocalWarmPool

    local = await LocalRuntime.open(
        settings=settings,
        state_store=state_store,
        session=session,
        webhook_url_for=webhook_url_for,
    )
    local.metrics = metrics
    local.warm_pool = LocalWarmPool(local, coordination=coordination, metrics=metrics)
    return local, None


def background_contexts(settings: Settings) -> list[CleanupCtx]:
    """Cleanup contexts of the long-running parts, in start order.

    The message path (delivery, wake/sleep) first: the reconciler nudges delivery
    and the culler sleeps through wake, so they must stop before it closes.
    The pollers right after it: they append to its buffer and notify its delivery.
    Leader election before the loops that register leader-only tasks with it
    (the tenant gauge too; it also listens to the message path's tenant events).
    """
    contexts: list[CleanupCtx] = [
        message_path_ctx,
        poller_ctx,
        leader_ctx,
        reconciler_ctx,
        culler_ctx,
        tenant_metrics_ctx,
        rollout_ctx,
    ]
    if settings.runtime == "kubernetes":
        contexts.append(warm_pool_ctx)
        if settings.state_store == "s3" and settings.snapshot_interval_s > 0:
            contexts.append(tree_snapshots_ctx)
    else:
        contexts.append(local_warm_pool_ctx)
    return contexts


async def poller_ctx(app: web.Application) -> AsyncIterator[None]:
    """Long polling (``getUpdates``) on every replica for the tenants whose ingress is
    ``polling``; each tenant's poll lease picks the one replica that polls it."""
    settings = app[keys.SETTINGS]
    pollers = PollerManager(
        registry=app[keys.REGISTRY],
        buffer=app[keys.BUFFER],
        coordination=app[keys.COORDINATION],
        bot_api=app[keys.BOT_API],
        notify=app[keys.DELIVERY].notify,
        metrics=app[keys.METRICS],
        default_ingress=settings.ingress,
        poll_timeout_s=settings.poll_timeout_s,
    )
    signals = app[keys.SIGNALS]
    signals.on_event(pollers.on_event)
    signals.on_reconnect(pollers.request_sync)
    app[keys.POLLERS] = pollers
    sweep = app[keys.TASKS].spawn(pollers.sync_forever(), name="poller-sweep", expect_forever=True)
    try:
        yield
    finally:
        await cancel_and_wait([sweep], timeout=5)
        await pollers.close()


async def leader_ctx(app: web.Application) -> AsyncIterator[None]:
    """Campaign for leadership for the app's lifetime; leader-only loops register
    with ``app[keys.LEADER_TASKS]``."""
    metrics = app[keys.METRICS]
    elector = await make_elector(
        settings=app[keys.SETTINGS], redis=app[keys.REDIS], metrics=metrics
    )
    metrics.is_leader.set(0)
    leader_tasks = LeaderTasks(
        elector,
        on_failure=lambda name: metrics.background_task_failures.labels(task=name).inc(),
    )
    app[keys.LEADER] = elector
    app[keys.LEADER_TASKS] = leader_tasks
    tasks = app[keys.TASKS]
    campaign = tasks.spawn(elector.run(), name="leader-election", expect_forever=True)
    runner = tasks.spawn(leader_tasks.run(), name="leader-tasks", expect_forever=True)
    try:
        yield
    finally:
        stuck = await cancel_and_wait([runner, campaign], timeout=5)
        if stuck:
            log.error("leader tasks did not stop: %s", [t.get_name() for t in stuck])
        await elector.release()
        await elector.backend.close()


async def reconciler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runtime events on every replica, the safety net while leading."""
    settings = app[keys.SETTINGS]
    elector = app[keys.LEADER]
    delivery = app[keys.DELIVERY]

    async def nudge_delivery(tenant_id: str) -> None:
        # An agent died: if the tenant has buffered updates, its worker wakes it again.
        delivery.notify_if_pending(tenant_id)

    reconciler = Reconciler(
        registry=app[keys.REGISTRY],
        runtime=app[keys.RUNTIME],
        coordination=app[keys.COORDINATION],
        metrics=app[keys.METRICS],
        resync_interval_s=settings.reconcile_interval_s,
        wake_stale_after_s=longest_wake_s(settings) + 30.0,
        stop_stale_after_s=settings.agent_stop_grace_s + 60.0,
        on_instance_lost=nudge_delivery,
        is_leader=lambda: elector.is_leader,
        # Kubernetes: every replica sees every pod. Local: only its own agents, which
        # are all there are when the registry is the data dir's own (one daemon per data
        # dir): then a running tenant without an agent is lost, e.g. after a daemon crash.
        runtime_sees_all=settings.runtime == "kubernetes" or settings.registry == "sqlite",
    )
    app[keys.RECONCILER] = reconciler
    events = app[keys.TASKS].spawn(
        reconciler.run_events(), name="reconciler-events", expect_forever=True
    )
    leader_tasks = app[keys.LEADER_TASKS]
    leader_tasks.add("reconciler-resync", reconciler.run_safety_net)
    if settings.runtime == "local" and settings.registry == "sqlite":
        # This daemon alone runs the data dir's agents (its lock): a tenant left running
        # by a crashed predecessor is reset now, not once a leader lease has expired.
        app[keys.TASKS].spawn(reconciler.resync(), name="reconciler-start-up")
    try:
        yield
    finally:
        await leader_tasks.remove("reconciler-resync")
        await cancel_and_wait([events], timeout=5)


async def culler_ctx(app: web.Application) -> AsyncIterator[None]:
    """The culler runs while this replica leads; it sleeps tenants through wake's
    sleep (under the tenant's wake lock, final state sync in runtime.stop)."""
    culler = Culler(
        registry=app[keys.REGISTRY],
        runtime=app[keys.RUNTIME],
        coordination=app[keys.COORDINATION],
        sleep=app[keys.WAKE].sleep,
        events=app[keys.SIGNALS].events,
    )
    # Events may have been missed while the subscriber reconnected: re-read everything.
    app[keys.SIGNALS].on_reconnect(culler.kick)
    app[keys.CULLER] = culler
    async with _while_leading(app, {"culler": culler.run}):
        yield


async def tenant_metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """The tenant gauge, refreshed on the message path's tenant events, while leading."""
    gauge = TenantGauge(app[keys.REGISTRY], app[keys.METRICS])
    app[keys.SIGNALS].on_event(gauge.mark_dirty)
    async with _while_leading(app, {"tenant-gauge": gauge.run}):
        yield


async def rollout_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fleet image rollouts: the operator's verbs on every replica, the controller (waves,
    health gate, the warm pool's image mix) while this replica leads."""
    settings = app[keys.SETTINGS]
    store = RolloutStore(app[keys.REDIS])
    pool = app.get(keys.WARM_POOL) or getattr(app[keys.RUNTIME], "warm_pool", None)
    controller = RolloutController(
        store=store,
        registry=app[keys.REGISTRY],
        default_image=settings.agent_image,
        tick_s=settings.rollout_tick_s,
        publish=app[keys.COORDINATION].publish_event,
        on_pool_mix=pool.set_image_mix if pool is not None else None,
    )
    app[keys.SIGNALS].on_event(controller.on_event)
    app[keys.ROLLOUTS] = Rollouts(store, on_change=controller.kick)
    async with _while_leading(app, {"rollout": controller.run}):
        yield


async def warm_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Refill the Kubernetes warm pool, and refresh the credentials of bound warm pods,
    while this replica leads."""
    tasks: dict[str, TaskFactory] = {"warm-pool": app[keys.WARM_POOL].run}
    refresher = getattr(app[keys.RUNTIME], "refresher", None)
    if refresher is not None:
        tasks["warm-credentials"] = refresher.run
    async with _while_leading(app, tasks):
        yield


async def tree_snapshots_ctx(app: web.Application) -> AsyncIterator[None]:
    """Kubernetes + S3: periodic history entries of running tenants' synced files, while
    this replica leads."""
    snapshots = TreeSnapshots(
        registry=app[keys.REGISTRY],
        state_store=app[keys.STATE_STORE],
        interval_s=app[keys.SETTINGS].snapshot_interval_s,
    )
    async with _while_leading(app, {"tree-snapshots": snapshots.run}):
        yield


@contextlib.asynccontextmanager
async def _while_leading(
    app: web.Application, tasks: dict[str, TaskFactory]
) -> AsyncIterator[None]:
    """Run ``tasks`` (by name) while this replica leads, for the body of the block."""
    leader_tasks = app[keys.LEADER_TASKS]
    for name, factory in tasks.items():
        leader_tasks.add(name, factory)
    try:
        yield
    finally:
        for name in tasks:
            await leader_tasks.remove(name)


async def local_warm_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the local runtime's warm pool (every daemon: the gateways are its children)."""
    pool = getattr(app[keys.RUNTIME], "warm_pool", None)
    if pool is not None:
        app[keys.TASKS].spawn(pool.run(), name="local-warm-pool", expect_forever=True)
    yield
