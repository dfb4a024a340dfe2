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

from aiohttp import web

from daemon import app_keys as keys
from daemon.app_keys import BUFFER, DELIVERY, TENANT_CACHE, WAKE
from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.model_gateway.app import MODEL_KEYS
from daemon.msgpath.buffer import Buffer
from daemon.msgpath.delivery import DeliveryManager
from daemon.msgpath.wake import EndpointCache, WakeManager
from daemon.msgpath.wake_admission import AdmissionMetrics, WakeAdmission

log = logging.getLogger(__name__)


async def _max_concurrent_wakes(coordination: Coordination) -> int:
    return (await coordination.get_config()).max_concurrent_wakes


async def message_path_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[keys.RUNTIME]
    coordination = app[keys.COORDINATION]
    signals = app[keys.SIGNALS]
    buffer = Buffer(app[keys.REDIS])
    tenants = app[TENANT_CACHE]  # made with the registry: the Bot API relay reads it too
    endpoints = EndpointCache(coordination)
    wake = WakeManager(
        settings=app[keys.SETTINGS],
        registry=app[keys.REGISTRY],
        runtime=runtime,
        coordination=coordination,
        endpoints=endpoints,
        signals=signals,
        bot_api=app[keys.BOT_API],
        metrics=app[keys.METRICS],
        tasks=app[keys.TASKS],
        model_keys=app.get(MODEL_KEYS),
        admission=WakeAdmission(
            app[keys.REDIS],
            cap=lambda: _max_concurrent_wakes(coordination),
            metrics=AdmissionMetrics(app[keys.METRICS].registry),
        ),
    )
    delivery = DeliveryManager(
        buffer=buffer,
        tenants=tenants,
        endpoints=endpoints,
        wake=wake,
        registry=app[keys.REGISTRY],
        runtime=runtime,
        coordination=coordination,
        session=app[keys.HTTP],
        metrics=app[keys.METRICS],
    )
    signals.on_event(delivery.on_event)
    signals.on_work(delivery.on_work_signal)
    # Missed messages while disconnected: drop cached knowledge, re-scan work.
    signals.on_reconnect(tenants.clear)
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
