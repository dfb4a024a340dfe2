"""Reconciler against a real SQLite registry and real Redis, with the in-memory runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.model import Tenant, TenantNotFound, TenantStatus, utcnow
from daemon.ports import Instance, InstanceEvent, InstancePhase
from daemon.reconciler import IN_TRANSIT_PHASES, Action, Reconciler, decide
from tests.loops.loop_support import quick_reconciler, stop_tasks
from tests.loops.memory_runtime import MemoryRuntime
from tests.support.polling import eventually
from tests.support.records import running_record

NOW = utcnow()


def instance(
    tid: str,
    name: str | None = None,
    phase: InstancePhase = InstancePhase.READY,
    url: str | None = None,
) -> Instance:
    return Instance(
        name=name or f"agent-{tid}",
        tenant_id=tid,
        phase=phase,
        webhook_url=url or f"http://127.0.0.1:9001/{tid}",
        gateway_url="http://127.0.0.1:9001",
    )


def tenant(
    tid: str = "t1", status: TenantStatus = TenantStatus.RUNNING, age_s: float = 0.0, **kw: object
) -> Tenant:
    defaults: dict[str, object] = {
        "pod_name": f"agent-{tid}",
        "endpoint": f"http://127.0.0.1:9001/{tid}",
    }
    defaults.update(kw)
    return Tenant(
        tenant_id=tid, status=status, updated_at=NOW - timedelta(seconds=age_s), **defaults
    )  # type: ignore[arg-type]


def _decide(t: Tenant | None, i: Instance | None, deleted: bool = False) -> Action:
    return decide(t, i, deleted=deleted, now=NOW, wake_stale_after_s=300, stop_stale_after_s=400)


# -- the decision table (pure) ------------------------------------------------------
S, P, A = TenantStatus, InstancePhase, Action
MOVED = "http://127.0.0.1:9002/t1"  # the instance answers at another address


@pytest.mark.parametrize(
    ("record", "inst", "deleted", "expected"),
    [
        (tenant(), instance("t1"), False, A.NOTHING),
        (tenant(), instance("t1", phase=P.FAILED), False, A.LOST),
        (tenant(), instance("t1"), True, A.LOST),
        (tenant(), None, False, A.LOST),
        # a late event for an earlier instance never touches the current one
        (tenant(), instance("t1", name="agent-t1-old", phase=P.FAILED), False, A.NOTHING),
        (tenant(), instance("t1", url=MOVED), False, A.DRIFT),
        (tenant(pod_name=None), instance("t1", url=MOVED), False, A.DRIFT),
        (tenant(pod_name=None), instance("t1", url=MOVED), True, A.NOTHING),
        # a wake in progress owns its instance; a stalled one is finished or reset
        (tenant(status=S.PROVISIONING), instance("t1", phase=P.FAILED), False, A.NOTHING),
        (tenant(status=S.PROVISIONING), None, False, A.NOTHING),
        (tenant(status=S.PROVISIONING, age_s=400), None, False, A.LOST),
        (tenant(status=S.PROVISIONING, age_s=400), instance("t1"), False, A.PROMOTE),
        (tenant(status=S.PROVISIONING), instance("t1"), False, A.NOTHING),
        (tenant(status=S.STOPPING), instance("t1", phase=P.STOPPING), False, A.NOTHING),
        (tenant(status=S.STOPPING), None, False, A.NOTHING),
        (tenant(status=S.STOPPING, age_s=500), None, False, A.LOST),
        # orphans: no record, or a record that should have no instance
        (None, instance("t1"), False, A.ORPHAN),
        (None, instance("t1"), True, A.NOTHING),
        (tenant(status=S.IDLE), instance("t1"), False, A.ORPHAN),
        (tenant(status=S.SUSPENDED), instance("t1", phase=P.FAILED), False, A.ORPHAN),
        (tenant(status=S.FAILED), instance("t1", phase=P.PENDING), False, A.ORPHAN),
        (tenant(status=S.IDLE), None, False, A.NOTHING),
    ],
)
def test_decide(
    record: Tenant | None, inst: Instance | None, deleted: bool, expected: Action
) -> None:
    assert _decide(record, inst, deleted) == expected


@pytest.mark.parametrize("phase", sorted(IN_TRANSIT_PHASES))
def test_an_instance_in_transit_can_only_be_an_orphan(phase: InstancePhase) -> None:
    """Why handle_event reads no record for such an event: with any record (or none, of
    any age, naming this instance or another), the decision is orphan or nothing."""
    records: list[Tenant | None] = [None]
    for status in TenantStatus:
        for age_s in (0.0, 1_000.0):
            records += [tenant(status=status, age_s=age_s), tenant(status=status, pod_name="x")]
    decisions = {_decide(record, instance("t1", phase=phase)) for record in records}
    assert decisions <= {A.ORPHAN, A.NOTHING}


async def test_events_of_an_instance_in_transit_read_no_record(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    """A wake's pod events (pending...) and a stop's (stopping) cost no registry round
    trip; the event that can change something (ready, failed, deleted) reads it."""
    rec = Reconciler(registry=registry, runtime=runtime, coordination=coordination)
    read: list[str] = []
    real_get = registry.get

    async def counted_get(tenant_id: str) -> Tenant:
        read.append(tenant_id)
        return await real_get(tenant_id)

    registry.get = counted_get  # type: ignore[method-assign]
    await registry.create(tenant(status=S.PROVISIONING))
    for phase in (P.PENDING, P.STOPPING):
        await rec.handle_event(InstanceEvent("modified", instance("t1", phase=phase)))
    assert read == []
    await rec.handle_event(InstanceEvent("deleted", instance("t1", phase=P.STOPPING)))
    await rec.handle_event(InstanceEvent("modified", instance("t1")))
    assert read == ["t1", "t1"]


# -- the loops -------------------------------------------------------------------------
@pytest.fixture
async def reconciler(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination, metrics: Metrics
) -> AsyncIterator[Reconciler]:
    rec = quick_reconciler(registry, runtime, coordination, metrics, orphan_stop_grace_s=1.0)
    tasks = [asyncio.create_task(rec.run_events())]
    await eventually(lambda: runtime.watchers == 1, what="watch open")
    try:
        yield rec
    finally:
        await stop_tasks(*tasks)


async def running_tenant(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination, tid: str
) -> Instance:
    inst = instance(tid)
    await registry.create(running_record(tid, inst))
    await coordination.set_endpoint(tid, inst.webhook_url or "", 60)
    runtime.instances[tid] = inst  # present before the reconciler looks: no event
    return inst


async def status_of(registry: SqliteRegistry, tid: str) -> TenantStatus:
    return (await registry.get(tid)).status


async def has_status(registry: SqliteRegistry, tid: str, expected: TenantStatus) -> bool:
    return await status_of(registry, tid) == expected


async def _no_endpoint(coordination: Coordination, tid: str) -> bool:
    return await coordination.get_endpoint(tid) is None


async def event_kinds(coordination: Coordination, tid: str) -> list[str]:
    return [e["kind"] for e in await coordination.event_log(tid)]


async def has_event(coordination: Coordination, tid: str, kind: str) -> bool:
    return kind in await event_kinds(coordination, tid)


@pytest.mark.parametrize("how", ["failed", "deleted"])
async def test_lost_instance_makes_running_tenant_idle(
    how: str,
    reconciler: Reconciler,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
    metrics: Metrics,
) -> None:
    await running_tenant(registry, runtime, coordination, "t1")
    if how == "failed":
        runtime.fail("t1", reason="OOMKilled")
    else:
        runtime.vanish("t1")
    # The event is published last, after the registry write and the cache drop.
    await eventually(lambda: has_event(coordination, "t1", "instance_lost"), what="lost event")
    record = await registry.get("t1")
    assert record.status == TenantStatus.IDLE
    assert record.endpoint is None and record.pod_name is None
    assert (
        "OOMKilled" in record.status_reason if how == "failed" else "gone" in record.status_reason
    )
    assert await coordination.get_endpoint("t1") is None
    assert metrics.registry.get_sample_value("otm_pod_failure_to_registry_seconds_count") == 1


async def test_nudge_is_called_for_the_lost_tenant(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    nudged: list[str] = []

    async def nudge(tid: str) -> None:
        nudged.append(tid)

    rec = Reconciler(
        registry=registry, runtime=runtime, coordination=coordination, on_instance_lost=nudge
    )
    await running_tenant(registry, runtime, coordination, "t1")
    runtime.fail("t1")
    await rec.handle_event(InstanceEvent("modified", runtime.instances["t1"]))
    assert nudged == ["t1"]
    # The same event again (another replica's view): the conditional write loses, no second nudge.
    await rec.handle_event(InstanceEvent("modified", runtime.instances["t1"]))
    assert nudged == ["t1"]


@pytest.mark.parametrize("stale_deletion_first", [False, True], ids=["drift", "late-event"])
async def test_ip_drift_updates_registry_and_cache(
    reconciler: Reconciler,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
    stale_deletion_first: bool,
) -> None:
    """The pod moves: the registry and the endpoint cache follow. A late deletion event of
    the tenant's previous instance, seen before the move, changes nothing."""
    current = await running_tenant(registry, runtime, coordination, "t1")
    if stale_deletion_first:
        old = replace(current, name="agent-t1-previous", phase=InstancePhase.GONE)
        runtime.emit_stale(InstanceEvent("deleted", old))
    # One tenant's events are handled in order: once this later change is
    # applied, a stale deletion before it has been handled (and must have changed nothing).
    moved = runtime.put(replace(current, webhook_url="http://127.0.0.2:9001/t1"))
    await eventually(lambda: has_event(coordination, "t1", "endpoint_changed"), what="drift")
    record = await registry.get("t1")
    assert record.status == TenantStatus.RUNNING
    assert record.endpoint == moved.webhook_url
    assert await coordination.get_endpoint("t1") == moved.webhook_url
    assert "instance_lost" not in await event_kinds(coordination, "t1")


async def test_repeated_crashes_mark_tenant_failed(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    await coordination.set_config({"max_wake_attempts": 2})
    rec = Reconciler(registry=registry, runtime=runtime, coordination=coordination)
    for attempt in range(2):
        if attempt:  # woken again by delivery
            inst = runtime.instances.pop("t1")
            await registry.update(
                "t1", status=TenantStatus.RUNNING, pod_name=inst.name, endpoint=inst.webhook_url
            )
        else:
            await running_tenant(registry, runtime, coordination, "t1")
        runtime.instances["t1"] = instance("t1", phase=InstancePhase.FAILED)
        await rec.handle_event(InstanceEvent("modified", runtime.instances["t1"]))
    record = await registry.get("t1")
    assert record.status == TenantStatus.FAILED
    assert "2 times" in record.status_reason
    assert "failed" in await event_kinds(coordination, "t1")


@pytest.fixture
async def safety_net(reconciler: Reconciler) -> AsyncIterator[Reconciler]:
    task = asyncio.create_task(reconciler.run_safety_net())
    try:
        yield reconciler
    finally:
        await stop_tasks(task)


async def test_orphans_are_stopped_by_the_leader(
    safety_net: Reconciler,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
) -> None:
    await registry.create(Tenant(tenant_id="sleepy", status=TenantStatus.IDLE))
    await running_tenant(registry, runtime, coordination, "busy")
    runtime.put(instance("ghost"))  # labelled for a tenant that does not exist
    runtime.put(instance("sleepy"))  # tenant is idle
    await eventually(
        lambda: "ghost" not in runtime.instances and "sleepy" not in runtime.instances,
        what="orphans stopped",
    )
    assert {tid for tid, _ in runtime.stopped} == {"ghost", "sleepy"}
    assert all(grace == 1.0 for _, grace in runtime.stopped)
    assert "busy" in runtime.instances
    await eventually(lambda: has_event(coordination, "sleepy", "orphan_stopped"), what="event")


async def test_orphan_that_gets_a_wake_in_grace_is_kept(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    rec = Reconciler(
        registry=registry,
        runtime=runtime,
        coordination=coordination,
        resync_interval_s=60,
        orphan_grace_s=0.3,
    )
    await registry.create(Tenant(tenant_id="t1", status=TenantStatus.IDLE))
    task = asyncio.create_task(rec.run_safety_net())
    try:
        runtime.put(instance("t1"))
        await rec.handle_event(InstanceEvent("added", runtime.instances["t1"]))
        # A wake claims the tenant before the grace period ends.
        await registry.update("t1", status=TenantStatus.PROVISIONING)
        await asyncio.sleep(0.6)
        assert runtime.stopped == []
    finally:
        await stop_tasks(task)


async def test_resync_fixes_stale_registry_entries(
    safety_net: Reconciler,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
) -> None:
    # Running in the registry, but the runtime has no such instance (lost while no watch ran).
    await registry.create(
        Tenant(
            tenant_id="stale",
            status=TenantStatus.RUNNING,
            pod_name="agent-stale",
            endpoint="http://127.0.0.1:9/stale",
        )
    )
    await coordination.set_endpoint("stale", "http://127.0.0.1:9/stale", 60)
    await eventually(
        lambda: has_status(registry, "stale", TenantStatus.IDLE), what="stale entry reset"
    )
    await eventually(
        lambda: _no_endpoint(coordination, "stale"), what="stale endpoint dropped from the cache"
    )


async def test_stalled_wake_is_adopted(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    rec = Reconciler(
        registry=registry, runtime=runtime, coordination=coordination, wake_stale_after_s=0.2
    )
    ready = instance("adopt")
    runtime.instances["adopt"] = ready
    await registry.create(Tenant(tenant_id="adopt", status=TenantStatus.PROVISIONING))
    await rec.resync()
    assert await status_of(registry, "adopt") == TenantStatus.PROVISIONING  # wake still fresh
    await asyncio.sleep(0.3)
    await rec.resync()
    record = await registry.get("adopt")
    assert record.status == TenantStatus.RUNNING
    assert record.endpoint == ready.webhook_url and record.pod_name == ready.name
    assert await coordination.get_endpoint("adopt") == ready.webhook_url


async def test_watch_is_reopened_after_it_breaks(
    registry: SqliteRegistry, coordination: Coordination
) -> None:
    class BrokenOnceRuntime(MemoryRuntime):
        opened = 0

        async def watch(self) -> AsyncIterator[InstanceEvent]:  # type: ignore[override]
            self.opened += 1
            if self.opened == 1:
                raise ConnectionError("watch dropped")
            async for event in super().watch():
                yield event

    runtime = BrokenOnceRuntime()
    rec = Reconciler(registry=registry, runtime=runtime, coordination=coordination)
    task = asyncio.create_task(rec.run_events())
    try:
        await eventually(lambda: runtime.watchers == 1, what="watch re-opened")
        await running_tenant(registry, runtime, coordination, "t1")
        runtime.vanish("t1")
        await eventually(
            lambda: has_status(registry, "t1", TenantStatus.IDLE), what="handled after re-open"
        )
    finally:
        await stop_tasks(task)


async def test_deleted_tenant_record_is_not_recreated(
    reconciler: Reconciler,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
) -> None:
    await running_tenant(registry, runtime, coordination, "t1")
    await registry.delete("t1")
    runtime.vanish("t1")
    await asyncio.sleep(0.2)
    with pytest.raises(TenantNotFound):
        await registry.get("t1")


async def test_partial_runtime_view_never_resets_running_tenants(
    registry: SqliteRegistry, runtime: MemoryRuntime, coordination: Coordination
) -> None:
    """Local runtime, several replicas: no agent *here* is no proof the agent is gone."""
    rec = Reconciler(
        registry=registry, runtime=runtime, coordination=coordination, runtime_sees_all=False
    )
    await registry.create(
        Tenant(tenant_id="elsewhere", status=TenantStatus.RUNNING, pod_name="agent-elsewhere")
    )
    await rec.resync()
    assert await status_of(registry, "elsewhere") == TenantStatus.RUNNING
    # Its own agents are still reconciled from events.
    await running_tenant(registry, runtime, coordination, "mine")
    runtime.vanish("mine")
    await rec.handle_event(InstanceEvent("deleted", instance("mine", phase=InstancePhase.GONE)))
    assert await status_of(registry, "mine") == TenantStatus.IDLE
