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

from daemon import keys
from daemon.buffer import Buffer
from daemon.cancellation import cancel_and_wait
from daemon.delivery import DeliveryManager
from daemon.keys import BUFFER, DELIVERY, TENANT_CACHE, WAKE
from daemon.tenant_cache import TenantCache
from daemon.wake import EndpointCache, WakeManager

log = logging.getLogger(__name__)

async def message_path_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[keys.RUNTIME]
    coordination = app[keys.COORDINATION]
    signals = app[keys.SIGNALS]
    buffer = Buffer(app[keys.REDIS])
    tenants = TenantCache(app[keys.REGISTRY])
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
    app[TENANT_CACHE] = tenants
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
