"""Composition of the message path: buffer, tenant cache, wake, delivery, signals.

Part of the composition root (with app.py and wiring.py). One cleanup context
(registered through wiring.background_contexts) builds
them after the shared resources exist and before the router starts listening,
and tears them down (workers cancelled, leases released) before Redis closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from daemon import app_keys as keys
from daemon.app_keys import BUFFER, DELIVERY, TENANT_CACHE, WAKE
from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.model_gateway.app import MODEL_KEYS
from daemon.model_gateway.keys import ModelKeys
from daemon.msgpath.buffer import Buffer
from daemon.msgpath.delivery import DeliveryManager
from daemon.msgpath.pubsub import TenantSignals
from daemon.msgpath.tenant_cache import TenantCache
from daemon.msgpath.wake import EndpointCache, WakeManager
from daemon.msgpath.wake_admission import AdmissionMetrics, WakeAdmission
from daemon.ports import Registry, Runtime
from daemon.settings import Settings
from daemon.tasks import TaskGroup
from daemon.telegram import BotApi

log = logging.getLogger(__name__)


async def _max_concurrent_wakes(coordination: Coordination) -> int:
    return (await coordination.get_config()).max_concurrent_wakes


@dataclass(frozen=True)
class MessagePath:
    buffer: Buffer
    wake: WakeManager
    delivery: DeliveryManager


def build_message_path(
    *,
    settings: Settings,
    redis: aioredis.Redis,
    registry: Registry,
    runtime: Runtime,
    coordination: Coordination,
    signals: TenantSignals,
    tenants: TenantCache,
    bot_api: BotApi,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    tasks: TaskGroup,
    model_keys: ModelKeys | None = None,
    admission: WakeAdmission | None = None,
) -> MessagePath:
    """Buffer, wake and delivery over one replica's parts, listening to its signals (the
    daemon's cleanup context below; tests that run two replicas in one process)."""
    buffer = Buffer(redis)
    endpoints = EndpointCache(coordination)
    wake = WakeManager(
        settings=settings,
        registry=registry,
        runtime=runtime,
        coordination=coordination,
        endpoints=endpoints,
        signals=signals,
        bot_api=bot_api,
        metrics=metrics,
        tasks=tasks,
        model_keys=model_keys,
        admission=admission,
    )
    delivery = DeliveryManager(
        buffer=buffer,
        tenants=tenants,
        endpoints=endpoints,
        wake=wake,
        registry=registry,
        runtime=runtime,
        coordination=coordination,
        session=session,
        metrics=metrics,
    )
    signals.on_event(delivery.on_event)
    signals.on_work(delivery.on_work_signal)
    return MessagePath(buffer, wake, delivery)


async def message_path_ctx(app: web.Application) -> AsyncIterator[None]:
    coordination = app[keys.COORDINATION]
    signals = app[keys.SIGNALS]
    path = build_message_path(
        settings=app[keys.SETTINGS],
        redis=app[keys.REDIS],
        registry=app[keys.REGISTRY],
        runtime=app[keys.RUNTIME],
        coordination=coordination,
        signals=signals,
        tenants=app[TENANT_CACHE],  # made with the registry: the Bot API relay reads it too
        bot_api=app[keys.BOT_API],
        session=app[keys.HTTP],
        metrics=app[keys.METRICS],
        tasks=app[keys.TASKS],
        model_keys=app.get(MODEL_KEYS),
        admission=WakeAdmission(
            app[keys.REDIS],
            cap=lambda: _max_concurrent_wakes(coordination),
            metrics=AdmissionMetrics(app[keys.METRICS].registry),
        ),
    )
    buffer, wake, delivery = path.buffer, path.wake, path.delivery
    # Missed messages while disconnected: drop cached knowledge, re-scan work (also at the
    # first connect: work a previous daemon left).
    signals.on_reconnect(app[TENANT_CACHE].clear)
    signals.on_reconnect(delivery.request_sweep)
    app[BUFFER] = buffer
    app[WAKE] = wake
    app[DELIVERY] = delivery
    tasks = app[keys.TASKS]
    listener = tasks.spawn(
        signals.listen(app[keys.REDIS]), name="message-path-signals", expect_forever=True
    )
    try:
        # Subscribed before any worker runs, so no event of ours goes unseen.
        async with asyncio.timeout(10):
            await signals.connected.wait()
    except TimeoutError:
        log.warning("signals subscriber not connected yet; continuing")
    sweeper = tasks.spawn(delivery.sweep_forever(), name="delivery-sweep", expect_forever=True)
    try:
        yield
    finally:
        sweeper.cancel()
        await delivery.close()
        stuck = await cancel_and_wait([sweeper, listener], timeout=5)
        if stuck:
            log.error("message path tasks did not stop: %s", [t.get_name() for t in stuck])
