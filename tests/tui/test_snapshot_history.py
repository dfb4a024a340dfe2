"""The snapshots view (`h`): a tenant's state history, and `r` to restore one (asks first,
refused in read-only mode), driven through Textual's Pilot over the fake source."""

from __future__ import annotations

from datetime import timedelta

from textual.pilot import Pilot
from textual.widgets import DataTable

from otm.tui import OtmApp
from otm.tui.dialogs import ConfirmScreen
from otm.tui.snapshots_screen import SnapshotsScreen
from tests.tui.conftest import build_app, ready, select, static_text, wait_until
from tests.tui.fake_source import FakeTenantSource, frozen_clock

SIZE = (120, 30)
TENANT = "kite-school"


def history() -> list[dict[str, object]]:
    now = frozen_clock()
    items = []
    for hours, trigger, size in ((1, "periodic", 2048), (5, "sleep", 1536), (30, "sleep", 900)):
        at = now - timedelta(hours=hours)
        items.append(
            {
                "key": f"snapshots/history/{at:%Y%m%dT%H%M%S}.000000Z-{trigger}.tar.gz",
                "taken_at": at.isoformat().replace("+00:00", "Z"),
                "trigger": trigger,
                "size": size,
            }
        )
    return items


def rows(screen: SnapshotsScreen) -> list[list[str]]:
    table: DataTable[str] = screen.table
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_snapshots(app: OtmApp, pilot: Pilot[None]) -> SnapshotsScreen:
    await ready(pilot)
    await select(pilot, app, TENANT)
    await pilot.press("h")
    screen = app.screen
    assert isinstance(screen, SnapshotsScreen) and screen.tenant_id == TENANT
    await wait_until(pilot, lambda: screen.table.row_count == 3, "the snapshots")
    return screen


async def test_h_lists_snapshots_and_r_restores_the_highlighted_one(
    source: FakeTenantSource, app: OtmApp
) -> None:
    source.snapshot_items[TENANT] = history()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_snapshots(app, pilot)
        assert [row[1:4] for row in rows(screen)] == [
            ["60m", "periodic", "2.0KiB"],
            ["5h", "sleep", "1.5KiB"],
            ["30h", "sleep", "900B"],
        ]
        assert screen.table.border_title == f"snapshots({TENANT})[3]"
        await pilot.press("down")
        await pilot.press("r")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert str(history()[1]["taken_at"]) in static_text(app, "#question")
        await pilot.press("y")
        wanted = ("restore", (TENANT, history()[1]["key"]))
        await wait_until(pilot, lambda: wanted in source.calls, "the restore call")
        await wait_until(pilot, lambda: screen.table.row_count == 4, "the history again")
        assert rows(screen)[0][2] == "restore"
        await wait_until(pilot, lambda: app.tenants[TENANT]["status"] == "running", "running")
        await pilot.press("escape")
        assert not isinstance(app.screen, SnapshotsScreen)


async def test_a_no_answer_restores_nothing(source: FakeTenantSource, app: OtmApp) -> None:
    source.snapshot_items[TENANT] = history()
    async with app.run_test(size=SIZE) as pilot:
        await open_snapshots(app, pilot)
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, SnapshotsScreen)
        await pilot.pause(0.1)
        assert not any(call[0] == "restore" for call in source.calls)


async def test_read_only_lists_but_never_restores(source: FakeTenantSource) -> None:
    source.snapshot_items[TENANT] = history()
    app = build_app(source, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_snapshots(app, pilot)
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SnapshotsScreen)
        assert not any(call[0] == "restore" for call in source.calls)


async def test_a_tenant_without_snapshots_says_so(source: FakeTenantSource, app: OtmApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select(pilot, app, TENANT)
        await pilot.press("h")
        await wait_until(
            pilot,
            lambda: "no snapshots of kite-school yet" in static_text(app, "#snapshots-note"),
            "the empty note",
        )
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SnapshotsScreen)
