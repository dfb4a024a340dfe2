"""Live behaviour: watch updates and their coalescing, reconnects, read-only mode, small
terminals."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from textual.widgets import Button, Input

from daemon.model import TenantStatus
from otm.tui import OtmApp, make_app, view
from otm.tui.config_screen import ConfigScreen
from otm.tui.dialogs import HelpScreen
from otm.tui.main_screen import HealthPanel, TenantsScreen
from tests.tui.conftest import (
    FAST,
    build_app,
    cell_text,
    ready,
    row_ids,
    running,
    static_text,
    wait_until,
)
from tests.tui.fake_source import FakeTenantSource, frozen_clock, tenant

SIZE = (110, 30)


def panel_text(app: OtmApp) -> str:
    return str(app.tenants_screen.query_one(HealthPanel).content)


async def test_watch_upserts_and_deletes_update_the_table(
    app: OtmApp, source: FakeTenantSource
) -> None:
    async with running(app, SIZE) as pilot:
        source.upsert(tenant("zeta-labs", "provisioning"))
        source.remove("pine-hostel")
        record = source.records["alpine-tours"]
        source.upsert(replace(record, status=TenantStatus.FAILED, version=record.version + 1))
        await wait_until(pilot, lambda: "zeta-labs" in row_ids(app), "the new tenant")
        await wait_until(pilot, lambda: "pine-hostel" not in row_ids(app), "the deletion")
        assert cell_text(app, "zeta-labs", "status") == "provisioning"
        assert cell_text(app, "alpine-tours", "status") == "FAILED"
        assert app.tenants_screen.table.border_title == "tenants(all)[20]"


async def test_a_flood_of_upserts_renders_once_per_tick(source: FakeTenantSource) -> None:
    # The render timer never fires by itself here: the test is the only one to tick it.
    app = build_app(source, render_interval_s=3600.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.synced and app.status is not None and app.buffered)
        app.flush()
        assert len(row_ids(app)) == 20
        renders = app.render_count
        for i in range(500):
            source.upsert(tenant(f"flood-{i:03d}", "running", ip=f"10.1.{i // 200}.{i % 200}"))
        await wait_until(pilot, lambda: len(app.tenants) == 520, "the events to be handled")
        assert app.render_count == renders  # 500 events, no render yet
        assert len(row_ids(app)) == 20
        app.flush()
        assert app.render_count == renders + 1
        assert len(row_ids(app)) == 520
        app.flush()  # nothing new: no render
        assert app.render_count == renders + 1


async def test_unchanged_row_order_updates_cells_in_place(
    app: OtmApp, source: FakeTenantSource
) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("down", "down", "down")
        selected = app.tenants_screen.selected_tenant()
        record = source.records["bakery-bot"]
        source.upsert(replace(record, status=TenantStatus.STOPPING, version=record.version + 1))
        await wait_until(pilot, lambda: cell_text(app, "bakery-bot", "status") == "stopping")
        assert app.tenants_screen.selected_tenant() == selected


async def test_disconnected_indicator_and_reconnect_with_backoff(source: FakeTenantSource) -> None:
    # The daemon is down when the dashboard starts, and stays down until the test has seen
    # the indicator (a fixed number of refusals would race the retries on a slow machine).
    source.down = True
    app = build_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.connection.state == "disconnected")
        await wait_until(pilot, lambda: "disconnected, retrying" in panel_text(app))
        assert "connection refused" in panel_text(app)
        await wait_until(pilot, lambda: source.watch_calls >= 3, "retries")
        source.down = False
        await wait_until(pilot, lambda: app.connection.state == "live", "the reconnect")
        await ready(pilot)
        assert "● live" in panel_text(app)
        # The link drops mid-session: rows stay (marked stale) and come back in sync.
        source.down = True
        source.drop_watches()
        await wait_until(pilot, lambda: app.connection.state == "disconnected")
        source.records.pop("orbit-cafe")  # changed while we were away
        await wait_until(pilot, lambda: "disconnected, retrying" in panel_text(app))
        assert app.tenants_screen.table.border_subtitle == "stale"
        assert "orbit-cafe" in row_ids(app)
        source.down = False
        await wait_until(pilot, lambda: app.connection.state == "live")
        await wait_until(pilot, lambda: "orbit-cafe" not in row_ids(app), "the resync")
        assert app.tenants_screen.table.border_subtitle == ""
        assert source.open_watches == 1


async def test_status_failure_is_shown_not_fatal(source: FakeTenantSource) -> None:
    source.fail_status = True
    app = build_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status_error is not None and app.synced)
        await wait_until(pilot, lambda: "connection refused" in panel_text(app))
        source.fail_status = False
        app.poll_status()
        await wait_until(pilot, lambda: "warm pool 2/3" in panel_text(app))


async def test_a_slow_daemon_never_blocks_the_ui_nor_piles_up_polls(
    source: FakeTenantSource,
) -> None:
    source.status_gate = asyncio.Event()  # /v1/status hangs
    app = build_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(row_ids(app)) == 20, "the table")
        for _ in range(5):
            app.poll_status()  # the timer firing while the first call still hangs
        # Keys work meanwhile. pilot.press only waits until the process looks idle (by its
        # CPU time, bounded at 1 s), which under load can be before the key was handled.
        await pilot.press("d")
        await wait_until(pilot, lambda: app.screen is not app.tenants_screen, "describe opens")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.tenants_screen, "back to the table")
        assert source.calls.count(("get_status", None)) == 1
        assert "status: waiting for the daemon" in panel_text(app)
        source.status_gate.set()
        await wait_until(pilot, lambda: "warm pool 2/3" in panel_text(app), "the late status")
        app.poll_status()
        await wait_until(pilot, lambda: source.calls.count(("get_status", None)) == 2)


async def test_health_panel_shows_daemon_and_warm_pool(app: OtmApp) -> None:
    async with running(app, SIZE):
        text = panel_text(app)
        for part in ("daemon 0.1.0", "up 3h12m", "leader yes", "redis ok", "registry sqlite ok",
                     "runtime local ok (10 instances)", "warm pool 2/3", "tenants 20",
                     "running 7", "failed 2"):  # fmt: skip
            assert part in text, part


async def test_readonly_disables_mutations(source: FakeTenantSource) -> None:
    app = build_app(source, readonly=True)
    async with running(app, SIZE) as pilot:
        assert "READ-ONLY" in panel_text(app)
        bindings = app.screen.active_bindings
        for key in ("w", "s", "ctrl+d"):
            assert not bindings[key].enabled, key  # listed, greyed out in the footer
        for key in ("d", "l", "slash", "c"):
            assert bindings[key].enabled, key
        await pilot.press("w", "s", "ctrl+d")
        assert isinstance(app.screen, TenantsScreen)  # no confirm dialog either
        for text in ("wake acme-support", "delete acme-support"):
            await pilot.press("colon")
            app.screen.query_one("#command", Input).value = text
            await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, TenantsScreen)
        assert [c for c in source.calls if c[0] in ("wake", "sleep", "delete")] == []
        assert "read-only mode: wake is disabled" in [n.message for n in app._notifications]
        # Reading is fine: describe and config open; config cannot be saved.
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        await wait_until(pilot, lambda: screen.config is not None)
        assert all(field.disabled for field in screen.query(Input))
        assert screen.query_one("#save", Button).disabled
        assert not screen.active_bindings["ctrl+s"].enabled
        await pilot.press("ctrl+s")
        assert not any(c[0] == "set_config" for c in source.calls)
        await pilot.press("escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Wake (read-only)" in static_text(app, "#help-0")


async def test_small_terminal_drops_columns_then_panel(app: OtmApp) -> None:
    async with running(app, (80, 24)) as pilot:
        keys = [str(k.value) for k in app.tenants_screen.table.columns]
        assert keys[:2] == ["name", "status"] and "age" in keys
        # NAME gave up width before LAST ACTIVE was dropped; ENDPOINT/POD went.
        assert "endpoint" not in keys and "last_active" in keys
        assert app.tenants_screen.table.columns["name"].width < view.NAME_MIN
        assert app.tenants_screen.query_one(HealthPanel).display
        # Every row is still reachable and the keys still work.
        assert len(row_ids(app)) == 20
        await pilot.resize_terminal(50, 14)
        await wait_until(pilot, lambda: not app.tenants_screen.query_one(HealthPanel).display)
        keys = [str(k.value) for k in app.tenants_screen.table.columns]
        assert keys[:2] == ["name", "status"] and len(keys) <= 4
        await pilot.resize_terminal(160, 40)
        await wait_until(pilot, lambda: len(app.tenants_screen.table.columns) >= 8)
        await pilot.press("d")
        assert app.screen is not app.tenants_screen


async def test_keymap_remaps_by_binding_id(source: FakeTenantSource) -> None:
    app = make_app(source, readonly=False, clock=frozen_clock, timings=FAST,
                   keymap={"tenants.wake": "W"})  # fmt: skip
    async with running(app, SIZE) as pilot:
        await pilot.press("w")
        await pilot.pause(0.1)
        assert not any(c[0] == "wake" for c in source.calls)
        await pilot.press("W")
        await wait_until(pilot, lambda: ("wake", "acme-support") in source.calls)
