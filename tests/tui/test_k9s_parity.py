"""k9s habits in the dashboard (issue 16): sorting, j/k/g/G, ctrl+c, y, breadcrumbs,
REASON, red toasts for refused actions, suspend/resume/new/edit keys, log toggles,
the narrow terminal, durations in the config editor, and one describe for CLI and TUI."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import Input, Log

from otm.describe_view import describe_fields, render_describe
from otm.tui import OtmApp
from otm.tui.config_screen import ConfigScreen
from otm.tui.detail_screens import DescribeScreen, LogsScreen, shown_lines
from otm.tui.dialogs import ConfirmScreen
from otm.tui.keybar import KeyBar
from otm.tui.main_screen import TenantsScreen
from otm.tui.tenant_form import TenantFormScreen, form_body
from tests.tui.conftest import (
    cell_text,
    open_config,
    press_on,
    row_ids,
    running,
    select,
    static_text,
    wait_until,
)
from tests.tui.fake_source import FakeTenantSource

SIZE = (130, 30)


def toasts(app: OtmApp) -> list[tuple[str, str]]:
    return [(n.severity, str(n.message)) for n in app._notifications]


def keybar_text(app: OtmApp) -> str:
    content = app.screen.query_one(KeyBar).content
    return str(getattr(content, "plain", content))


async def test_shift_letters_sort_and_again_reverses(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        by_name = row_ids(app)
        assert by_name == sorted(by_name)
        await pilot.press("S")
        await wait_until(pilot, lambda: row_ids(app) != by_name, "sorted by status")
        statuses = [cell_text(app, t, "status").lower() for t in row_ids(app)]
        assert statuses == sorted(statuses)
        assert "STATUS↑" in [str(c.label) for c in app.tenants_screen.table.columns.values()]
        await pilot.press("S")
        await wait_until(
            pilot,
            lambda: (
                [cell_text(app, t, "status").lower() for t in row_ids(app)]
                == sorted(statuses, reverse=True)
            ),
            "reversed",
        )
        assert "↓STATUS" in str(app.tenants_screen.table.border_title)
        await pilot.press("N")
        await wait_until(pilot, lambda: row_ids(app) == by_name, "back to names")


async def test_vim_keys_move_the_cursor(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        ids = row_ids(app)
        screen = app.tenants_screen
        await pilot.press("G")
        assert screen.selected_tenant() == ids[-1]
        await pilot.press("k")
        assert screen.selected_tenant() == ids[-2]
        await pilot.press("g")
        assert screen.selected_tenant() == ids[0]
        await pilot.press("j", "j")
        assert screen.selected_tenant() == ids[2]


async def test_y_confirms_a_delete(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "kite-school", "ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_until(pilot, lambda: ("delete", "kite-school") in source.calls, "delete")
        await wait_until(pilot, lambda: "kite-school" not in row_ids(app), "row gone")


async def test_breadcrumbs_and_reason_column(app: OtmApp) -> None:
    async with running(app, (160, 30)) as pilot:
        await wait_until(pilot, lambda: keybar_text(app), "the key bar")
        assert keybar_text(app).startswith("<tenants> ? Help  : Command  q Quit")
        assert "readiness timeout" in cell_text(app, "delta-fitness", "reason")
        await press_on(pilot, app, "delta-fitness", "d")
        assert isinstance(app.screen, DescribeScreen)
        await wait_until(pilot, lambda: "<describe delta-fitness>" in keybar_text(app))
        assert keybar_text(app).startswith("<tenants> <describe delta-fitness>")


async def test_a_refused_wake_is_a_red_toast(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await select(pilot, app, "cedar-legal")  # suspended
        await pilot.press("w")
        await wait_until(pilot, lambda: any(s == "error" for s, _ in toasts(app)), "a toast")
        severity, text = toasts(app)[-1]
        assert severity == "error"
        assert "is suspended" in text and "otm tenant resume cedar-legal" in text


async def test_p_suspends_and_resumes(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "kite-school", "p")
        await wait_until(pilot, lambda: cell_text(app, "kite-school", "status") == "suspended")
        await pilot.press("p")
        await wait_until(pilot, lambda: cell_text(app, "kite-school", "status") == "idle")
        assert [c for c in source.calls if c[0] in ("suspend", "resume")] == [
            ("suspend", "kite-school"),
            ("resume", "kite-school"),
        ]


async def test_n_creates_a_tenant(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, TenantFormScreen)
        app.screen.query_one("#name", Input).value = "newbie"
        app.screen.query_one("#labels", Input).value = "tier=free"
        app.screen.query_one("#idle_timeout", Input).value = "15m"
        await pilot.press("ctrl+s")
        # Without a bot token nothing is sent: the form says why.
        assert isinstance(app.screen, TenantFormScreen)
        assert "bot token is required" in static_text(app, "#form-error")
        app.screen.query_one("#bot_token", Input).value = "777:NEW"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "newbie" in row_ids(app), "the new row")
        created = source.records["newbie"]
        assert created.labels == {"tier": "free"} and created.idle_timeout_s == 900
        assert created.bot_token == "777:NEW"
        assert isinstance(app.screen, TenantsScreen)


async def test_e_edits_and_rotates_the_token(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "kite-school", "e")
        assert isinstance(app.screen, TenantFormScreen)
        app.screen.query_one("#labels", Input).value = "tier=gold"
        app.screen.query_one("#bot_token", Input).value = "999:ROTATED"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: source.records["kite-school"].labels == {"tier": "gold"})
        assert source.records["kite-school"].bot_token == "999:ROTATED"
        assert any("bot token" in text for _, text in toasts(app))
        # The daemon's refusal comes back red.
        await pilot.press("e")
        app.screen.query_one("#idle_timeout", Input).value = "5s"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: toasts(app)[-1][0] == "error", "a red toast")
        assert "idle_timeout_s must be" in toasts(app)[-1][1]


def test_form_body_sends_only_changes() -> None:
    record = {"tenant_id": "a", "labels": {"x": "1"}, "idle_timeout_s": 600, "image": None}
    entered = {"labels": "x=1", "idle_timeout": "10m", "image": "", "bot_token": ""}
    assert form_body(record, entered) == ({}, "nothing changed")
    assert form_body(record, {**entered, "idle_timeout": "default"}) == (
        {"idle_timeout_s": None},
        None,
    )
    error = form_body(record, {**entered, "labels": "x"})[1]
    assert error == "invalid label 'x' (expected key=value)"


async def test_log_toggles_and_since(app: OtmApp, source: FakeTenantSource) -> None:
    stamped = "2026-05-01T11:59:00.000000Z gateway listening on :18789"
    source.log_lines["bakery-bot"] = [stamped]
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "bakery-bot", "l")
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        log = screen.query_one(Log)
        await wait_until(pilot, lambda: log.line_count == 1)
        await pilot.press("t")
        await wait_until(pilot, lambda: list(log.lines) == ["gateway listening on :18789"])
        await pilot.press("s")
        assert log.auto_scroll is False
        await pilot.press("3")
        await wait_until(
            pilot, lambda: ("logs", ("bakery-bot", True, 900.0)) in source.calls, "since 15m"
        )
        await pilot.press("0")
        await wait_until(pilot, lambda: ("logs", ("bakery-bot", True, None)) in source.calls)
    assert shown_lines(["x" * 25], timestamps=True, wrap_width=10) == ["x" * 10, "x" * 10, "x" * 5]


async def test_narrow_terminal_keeps_the_essentials(app: OtmApp) -> None:
    async with running(app, (80, 24)) as pilot:
        await wait_until(pilot, lambda: keybar_text(app), "the key bar")
        assert "? Help  : Command  q Quit" in keybar_text(app)
        await pilot.press("c")
        assert isinstance(app.screen, ConfigScreen)
        await wait_until(pilot, lambda: app.screen.config is not None)  # type: ignore[attr-defined]
        save = app.screen.query_one("#save")
        assert save.region.bottom <= 24 - 1  # above the key bar, not scrolled away


async def test_config_editor_takes_durations(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        screen = await open_config(pilot)
        screen.query_one("#input-default_idle_timeout_s", Input).value = "15m"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: ("set_config", {"default_idle_timeout_s": 900}) in source.calls
        )


def test_cli_and_tui_describe_the_same_fields_in_the_same_order() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    tenant = {
        "tenant_id": "acme",
        "status": "running",
        "labels": {"tier": "gold"},
        "created_at": "2026-04-01T12:00:00+00:00",
        "last_active_at": "2026-05-01T11:58:00+00:00",
        "version": 3,
    }
    buffer = {"pending": 2, "dead_letters": 0}
    fields = describe_fields(tenant, buffer, now=now, default_idle_timeout_s=600)
    cli = render_describe(tenant, [], buffer, now=now, default_idle_timeout_s=600)
    cli_labels = [line.split(":", 1)[0] for line in cli.splitlines()[: len(fields)]]
    assert cli_labels == [label for label, _ in fields]
    assert ("Idle Deadline", "in 8m") in fields
