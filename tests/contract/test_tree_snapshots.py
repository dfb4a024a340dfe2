"""The leader's periodic snapshots of running Kubernetes tenants (daemon/lifecycle/
tree_snapshots.py) on both state stores and a real SQLite registry: every running tenant's
synced tree becomes a ``periodic`` history entry, no other tenant gets one, and the task is
wired only where it applies (Kubernetes agents on the s3 store, an interval set)."""

from __future__ import annotations

from pathlib import Path

from daemon import wiring
from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.lifecycle.tree_snapshots import TreeSnapshots
from daemon.model import Tenant, TenantStatus
from daemon.ports import StateStore
from daemon.settings import load_settings
from tests.contract.test_snapshot_tree import MONDAY, put_tree


async def test_running_tenants_get_a_periodic_entry_of_their_synced_tree(
    state_store: StateStore, tmp_path: Path
) -> None:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    try:
        await registry.create(Tenant(tenant_id="busy", status=TenantStatus.RUNNING))
        await registry.create(Tenant(tenant_id="asleep", status=TenantStatus.IDLE))
        for tenant_id in ("busy", "asleep"):
            await put_tree(state_store, tenant_id, MONDAY)
        snapshots = TreeSnapshots(registry=registry, state_store=state_store, interval_s=3600)
        assert await snapshots.snapshot_running() == 1
        [entry] = await state_store.list_snapshots("busy")
        assert entry.trigger == "periodic"
        assert await state_store.list_snapshots("asleep") == []
        # The entry is the tree as synced: restoring it gives exactly those files back.
        await put_tree(state_store, "busy", {"workspace/notes.md": b"later notes"})
        await state_store.restore_tree("busy", entry.key)
        assert await state_store.get("busy", "workspace/notes.md") == MONDAY["workspace/notes.md"]
    finally:
        await registry.close()


def test_the_task_runs_only_for_kubernetes_agents_on_s3() -> None:
    def contexts(**flags: object) -> list[object]:
        return list(wiring.background_contexts(load_settings(flags=flags, env={})))

    k8s_s3 = {"runtime": "kubernetes", "state_store": "s3", "s3_bucket": "b"}
    assert wiring.tree_snapshots_ctx in contexts(**k8s_s3)
    assert wiring.tree_snapshots_ctx not in contexts(**k8s_s3, snapshot_interval_s=0)
    assert wiring.tree_snapshots_ctx not in contexts(runtime="kubernetes")
    assert wiring.tree_snapshots_ctx not in contexts()
