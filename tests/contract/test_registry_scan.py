"""Registry contract, whole-registry reads: ``scan`` (page by page) and
``count_by_status`` (no records read), on every adapter. Pages hold at most
PAGE_SIZE (2) records here, so five records take several pages."""

from __future__ import annotations

from daemon.model import Tenant, TenantStatus
from daemon.ports import Registry
from tests.contract.conftest import PAGE_SIZE

IDLE = TenantStatus.IDLE
RUNNING = TenantStatus.RUNNING
IDS = ["delta", "alpha", "echo", "charlie", "bravo"]


async def seeded(registry: Registry) -> Registry:
    for tenant_id in IDS:
        await registry.create(Tenant(tenant_id=tenant_id, bot_token=f"{tenant_id}:token"))
    for tenant_id in ("echo", "alpha", "charlie"):
        await registry.update(tenant_id, status=RUNNING)
    return registry


async def pages(registry: Registry, status: TenantStatus | None = None) -> list[list[Tenant]]:
    return [page async for page in registry.scan(status=status)]


async def test_scan_yields_every_record_once_in_bounded_pages(registry: Registry) -> None:
    await seeded(registry)
    every = await pages(registry)
    assert len(every) > 1
    assert all(0 < len(page) <= PAGE_SIZE for page in every)
    records = [t for page in every for t in page]
    assert sorted(t.tenant_id for t in records) == sorted(IDS)
    # Full records, secrets included: the same as get.
    for tenant in records:
        assert tenant == await registry.get(tenant.tenant_id)


async def test_scan_filters_by_status(registry: Registry) -> None:
    await seeded(registry)
    running = [t for page in await pages(registry, RUNNING) for t in page]
    assert sorted(t.tenant_id for t in running) == ["alpha", "charlie", "echo"]
    assert all(t.status is RUNNING for t in running)
    idle = [t.tenant_id for page in await pages(registry, IDLE) for t in page]
    assert sorted(idle) == ["bravo", "delta"]
    assert await pages(registry, TenantStatus.FAILED) == []


async def test_scan_of_empty_registry(registry: Registry) -> None:
    assert await pages(registry) == []
    assert await pages(registry, RUNNING) == []


async def test_other_calls_run_between_pages(registry: Registry) -> None:
    """The scan holds nothing between pages: writes go through meanwhile, and records
    present throughout still come out exactly once."""
    await seeded(registry)
    seen: list[str] = []
    async for page in registry.scan():
        seen += [t.tenant_id for t in page]
        await registry.update("bravo", status_reason=f"written after {len(seen)}")
        await registry.touch("delta", (await registry.get("delta")).last_active_at)
    assert sorted(seen) == sorted(IDS)


async def test_count_by_status(registry: Registry) -> None:
    assert await registry.count_by_status() == {}
    await seeded(registry)
    assert await registry.count_by_status() == {RUNNING: 3, IDLE: 2}
    await registry.delete("echo")
    await registry.update("bravo", status=TenantStatus.SUSPENDED)
    assert await registry.count_by_status() == {
        RUNNING: 2,
        IDLE: 1,
        TenantStatus.SUSPENDED: 1,
    }
