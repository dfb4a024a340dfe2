"""Periodic history snapshots of running Kubernetes tenants (leader task ``tree-snapshots``).

A Kubernetes tenant's state is a file tree its pod's sync sidecar mirrors to the state
store (``tenants/{id}/state/``, ``workspace/``); every sleep packs it into a history entry
(the runtime's stop). While a tenant runs, this task adds a ``periodic`` entry every
``interval_s`` from what the sidecar last uploaded, so a long-running agent can be taken
back to an earlier hour too. The sidecar never uploads SQLite's -wal/-shm, but a database
file copied while a checkpoint ran can be torn; a sleep's entry (after the final sync of a
stopped gateway) never is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from daemon.model import TenantStatus
from daemon.ports import Registry, StateStore

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class TreeSnapshots:
    registry: Registry
    state_store: StateStore
    interval_s: float

    async def run(self) -> None:
        """Until cancelled (run it only while leading: one replica records)."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.snapshot_running()

    async def snapshot_running(self) -> int:
        """One round: a ``periodic`` entry for every running tenant; how many were taken.
        One tenant's failure is logged and never stops the others."""
        taken = 0
        async for page in self.registry.scan(status=TenantStatus.RUNNING):
            for tenant in page:
                try:
                    recorded = await self.state_store.record_tree(
                        tenant.tenant_id, trigger="periodic"
                    )
                except Exception as exc:  # one tenant's store error must not end the round
                    log.warning("periodic snapshot of %s failed: %r", tenant.tenant_id, exc)
                    continue
                taken += recorded is not None
        return taken
