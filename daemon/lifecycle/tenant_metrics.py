"""The tenants-by-status gauge (``otm_tenants{status}``).

Refreshed from the registry every ``REFRESH_S`` and soon after any tenant event
(any replica publishes one per state change), but never more often than
``MIN_SPACING_S`` nor than ``DUTY`` of the time the last listing took: a
small registry shows a wake within seconds, while a large one (counting 100,000
DynamoDB records still reads the status index) is counted at most ~10 % of the time, however many
events a node failure brings. Only the leader lists (the counts are global);
dashboards take the ``max`` over replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from daemon.metrics import Metrics
from daemon.model import TenantStatus
from daemon.ports import Registry

log = logging.getLogger(__name__)

REFRESH_S = 30.0
MIN_SPACING_S = 2.0
DUTY = 0.1
"""At most this fraction of the time is spent listing the registry."""


@dataclass(eq=False)
class TenantGauge:
    registry: Registry
    metrics: Metrics
    _: KW_ONLY
    refresh_s: float = REFRESH_S
    min_spacing_s: float = MIN_SPACING_S
    _dirty: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def mark_dirty(self, tenant_id: str = "", event: dict[str, Any] | None = None) -> None:
        """A tenant changed somewhere (signature of a TenantSignals event handler)."""
        self._dirty.set()

    async def refresh(self) -> dict[str, int]:
        # Counted by the registry: no record is read (100,000 of them were ~90 MB
        # of Python objects and seconds of decoding on the daemon's one core).
        counts = {s.value: n for s, n in (await self.registry.count_by_status()).items()}
        for status in TenantStatus:
            if status is not TenantStatus.DELETED:
                self.metrics.tenants_by_status.labels(status=status.value).set(
                    counts.get(status.value, 0)
                )
        return counts

    async def run(self) -> None:
        """Leader only; on losing leadership the series go (a stale copy would mislead)."""
        try:
            while True:
                self._dirty.clear()
                started = time.monotonic()
                try:
                    await self.refresh()
                except Exception as exc:  # registry briefly down: keep the last values
                    log.warning("tenant gauge refresh failed: %s", exc)
                took = time.monotonic() - started
                spacing = max(self.min_spacing_s, took / DUTY)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(self.refresh_s, spacing)):
                        await self._dirty.wait()
                await asyncio.sleep(max(0.0, started + spacing - time.monotonic()))
        finally:
            self.metrics.tenants_by_status.clear()
