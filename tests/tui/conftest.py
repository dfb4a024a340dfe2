"""TUI test fixtures: a fake source with twenty tenants, a frozen clock, fast timers,
no cursor blink (snapshots must not depend on when they were taken)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input, Static

from otm.tui import OtmApp, Timings, make_app
from otm.tui.config_screen import ConfigScreen
from tests.support.daemon_proc import DaemonProc
from tests.support.polling import eventually
from tests.tui.fake_source import MIXED_BUFFERS, FakeTenantSource, frozen_clock, mixed_tenants
from tests.tui.real_daemon import start_daemon

# Polls run once at start; tests that need more ask for them.
FAST = Timings(
    render_interval_s=0.05,
    clock_refresh_s=3600.0,
    status_interval_s=3600.0,
    buffer_interval_s=3600.0,
    reconnect_initial_s=0.05,
    reconnect_max_s=0.2,
)
WAIT_S = 10.0


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def daemon(redis_url: str, tmp_path: Path) -> Iterator[DaemonProc]:
    """A real `python -m daemon` on the test's clean Redis, stopped after the test."""
    with start_daemon(tmp_path / "otm", redis_url) as proc:
        yield proc


@pytest.fixture
def source() -> FakeTenantSource:
    return FakeTenantSource(mixed_tenants(), buffers=MIXED_BUFFERS)


def build_app(source: FakeTenantSource, *, readonly: bool = False, **timings: float) -> OtmApp:
    chosen = Timings(**{**FAST.__dict__, **timings}) if timings else FAST
    return make_app(source, readonly=readonly, clock=frozen_clock, timings=chosen)


@pytest.fixture
def app(source: FakeTenantSource) -> OtmApp:
    return build_app(source)


async def wait_until(pilot: Pilot[None], predicate: Callable[[], object], what: str = "") -> None:
    """Let the app run until ``predicate()`` holds (bounded: fails after WAIT_S)."""
    await eventually(predicate, WAIT_S, what, pause=pilot.pause)


def settled(app: OtmApp) -> bool:
    """Snapshot in, status and buffered counts fetched, and all of it rendered."""
    return bool(
        app.synced
        and app.status is not None
        and app.buffered
        and not app.dirty
        and app.tenants_screen.table.row_count == len(app.tenants_screen.visible_ids())
    )


async def ready(pilot: Pilot[None]) -> OtmApp:
    app = pilot.app
    assert isinstance(app, OtmApp)
    await wait_until(pilot, lambda: settled(app), "the first render")
    return app


@asynccontextmanager
async def running(app: OtmApp, size: tuple[int, int]) -> AsyncIterator[Pilot[None]]:
    """The app under Pilot, after its first complete render."""
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        yield pilot


async def open_config(pilot: Pilot[None]) -> ConfigScreen:
    """Press c; the config editor once it shows the live config."""
    await pilot.press("c")
    screen = pilot.app.screen
    assert isinstance(screen, ConfigScreen)
    await wait_until(pilot, lambda: screen.config is not None, "the live config")
    return screen


async def select(pilot: Pilot[None], app: OtmApp, tenant_id: str) -> None:
    """Put the tenants table's cursor on ``tenant_id``."""
    table = app.tenants_screen.table
    table.move_cursor(row=table.get_row_index(tenant_id), animate=False)
    await pilot.pause()
    assert app.tenants_screen.selected_tenant() == tenant_id


async def press_on(pilot: Pilot[None], app: OtmApp, tenant_id: str, *keys: str) -> None:
    """Select ``tenant_id``'s row, then press ``keys``."""
    await select(pilot, app, tenant_id)
    await pilot.press(*keys)


def static_text(app: OtmApp, selector: str) -> str:
    """What a Static on the active screen shows, as plain text (Rich renderables too)."""
    content = app.screen.query_one(selector, Static).content
    if isinstance(content, str):
        return content
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return console.export_text().rstrip("\n")


def cell_text(app: OtmApp, tenant_id: str, column: str) -> str:
    value = app.tenants_screen.table.get_cell(tenant_id, column)
    return str(getattr(value, "plain", value))


def row_ids(app: OtmApp) -> list[str]:
    table = app.tenants_screen.table
    return [str(key.value) for key in table.rows]
