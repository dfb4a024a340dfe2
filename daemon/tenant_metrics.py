"""The tenants-by-status gauge (``otm_tenants{status}``).

Refreshed from the registry every ``REFRESH_S`` and soon after any tenant event
(any replica publishes one per state change), at most once per
``MIN_SPACING_S``: dashboards see a wake or a failure within seconds, and a
burst of events (a node failure taking many pods) costs one registry listing,
not one per event. Every replica exports the same counts; dashboards take the
``max`` over replicas.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from daemon import keys
from daemon.cancellation import cancel_and_wait
from daemon.metrics import Metrics
from daemon.model import TenantStatus
from daemon.ports import Registry

log = logging.getLogger(__name__)

REFRESH_S = 30.0
MIN_SPACING_S = 2.0


class TenantGauge:
    def __init__(
        self,
        registry: Registry,
        metrics: Metrics,
        *,
        refresh_s: float = REFRESH_S,
        min_spacing_s: float = MIN_SPACING_S,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.refresh_s = refresh_s
        self.min_spacing_s = min_spacing_s
        self._dirty = asyncio.Event()

    def mark_dirty(self, tenant_id: str = "", event: dict[str, Any] | None = None) -> None:
        """A tenant changed somewhere (signature of a TenantSignals event handler)."""
        self._dirty.set()

    async def refresh(self) -> dict[str, int]:
        tenants = await self.registry.list()
        counts = collections.Counter(t.status.value for t in tenants)
        for status in TenantStatus:
            if status is not TenantStatus.DELETED:
                self.metrics.tenants_by_status.labels(status=status.value).set(
                    counts.get(status.value, 0)
                )
        return dict(counts)

    async def run(self) -> None:
        while True:
            self._dirty.clear()
            started = time.monotonic()
            try:
                await self.refresh()
            except Exception as exc:  # registry briefly down: keep the last values
                log.warning("tenant gauge refresh failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_s):
                    await self._dirty.wait()
            await asyncio.sleep(max(0.0, started + self.min_spacing_s - time.monotonic()))


async def tenant_metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context; after the message path's, whose signals carry tenant events."""
    from daemon.message_path import SIGNALS

    gauge = TenantGauge(app[keys.REGISTRY], app[keys.METRICS])
    signals = app.get(SIGNALS)
    if signals is not None:
        signals.on_event(gauge.mark_dirty)
    task = app[keys.TASKS].spawn(gauge.run(), name="tenant-gauge", expect_forever=True)
    try:
        yield
    finally:
        await cancel_and_wait([task], timeout=5)
