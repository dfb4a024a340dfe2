"""SVG snapshots of the main screens over fixed data and a frozen clock.

Review changes in the HTML report pytest-textual-snapshot writes on failure, then
accept them with `pytest tests/tui/test_snapshots.py --snapshot-update`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.pilot import Pilot
from textual.widgets import Input, Static

from otm.tui import OtmApp
from otm.tui.config_screen import ConfigScreen
from otm.tui.detail_screens import DescribeScreen
from tests.tui.conftest import build_app, ready, wait_until
from tests.tui.fake_source import FakeTenantSource

SIZE = (120, 40)
SnapCompare = Callable[..., bool]
Steps = Callable[[Pilot[None], OtmApp], Awaitable[None]]


def settle_then(steps: Steps | None = None) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = await ready(pilot)
        if steps is not None:
            await steps(pilot, app)
        await pilot.pause()

    return run_before


async def select(pilot: Pilot[None], app: OtmApp, tenant_id: str) -> None:
    table = app.tenants_screen.table
    table.move_cursor(row=table.get_row_index(tenant_id), animate=False)
    await pilot.pause()


def test_tenant_table(snap_compare: SnapCompare, source: FakeTenantSource) -> None:
    assert snap_compare(build_app(source), terminal_size=SIZE, run_before=settle_then())


def test_tenant_table_small_terminal_readonly(
    snap_compare: SnapCompare, source: FakeTenantSource
) -> None:
    app = build_app(source, readonly=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle_then())


def test_describe(snap_compare: SnapCompare, source: FakeTenantSource) -> None:
    async def steps(pilot: Pilot[None], app: OtmApp) -> None:
        await select(pilot, app, "delta-fitness")
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DescribeScreen)
        await wait_until(pilot, lambda: screen.details is not None, "describe")

    assert snap_compare(build_app(source), terminal_size=SIZE, run_before=settle_then(steps))


def test_config_with_inline_error(snap_compare: SnapCompare, source: FakeTenantSource) -> None:
    async def steps(pilot: Pilot[None], app: OtmApp) -> None:
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        await wait_until(pilot, lambda: screen.config is not None, "config")
        screen.query_one("#input-default_idle_timeout_s", Input).value = "5"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any(c[0] == "set_config" for c in source.calls))
        error = screen.query_one("#error-default_idle_timeout_s", Static)
        await wait_until(pilot, lambda: "between" in str(error.content))

    assert snap_compare(build_app(source), terminal_size=SIZE, run_before=settle_then(steps))


def test_help(snap_compare: SnapCompare, source: FakeTenantSource) -> None:
    async def steps(pilot: Pilot[None], app: OtmApp) -> None:
        await pilot.press("question_mark")

    assert snap_compare(build_app(source), terminal_size=SIZE, run_before=settle_then(steps))


def test_confirm_delete(snap_compare: SnapCompare, source: FakeTenantSource) -> None:
    async def steps(pilot: Pilot[None], app: OtmApp) -> None:
        await select(pilot, app, "kite-school")
        await pilot.press("ctrl+d")

    assert snap_compare(build_app(source), terminal_size=SIZE, run_before=settle_then(steps))


def test_disconnected(snap_compare: SnapCompare, source: FakeTenantSource) -> None:
    async def steps(pilot: Pilot[None], app: OtmApp) -> None:
        source.fail_connects = 1_000  # the daemon stays away
        source.drop_watches()
        await wait_until(pilot, lambda: app.connection.state == "disconnected")
        app.flush()

    app = build_app(source, reconnect_initial_s=30.0)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle_then(steps))
