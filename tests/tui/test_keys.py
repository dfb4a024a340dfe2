"""Every key binding of the dashboard, driven through Textual's Pilot over the fake source."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, Log, Static

from otm.tui import OtmApp
from otm.tui.config_screen import ConfigScreen
from otm.tui.detail_screens import DescribeScreen, LogsScreen
from otm.tui.dialogs import CommandPrompt, ConfirmScreen, HealthScreen, HelpScreen
from otm.tui.main_screen import TenantsScreen
from tests.tui.conftest import (
    build_app,
    cell_text,
    open_config,
    press_on,
    row_ids,
    running,
    static_text,
    wait_until,
)
from tests.tui.fake_source import FakeTenantSource

SIZE = (110, 30)  # big enough for every column; smaller renders keep the tests quick


async def test_table_shows_every_tenant_sorted_with_columns(app: OtmApp) -> None:
    async with running(app, (120, 40)):
        ids = row_ids(app)
        assert len(ids) == 20 and ids == sorted(ids)
        table = app.tenants_screen.table
        assert [str(c.label) for c in table.columns.values()] == [
            "NAME", "STATUS", "ENDPOINT/POD", "LAST ACTIVE", "IDLE DEADLINE", "BUFFERED", "AGE",
        ]  # fmt: skip
        assert cell_text(app, "acme-support", "status") == "running"
        assert cell_text(app, "acme-support", "endpoint") == "10.0.3.7:8787"
        assert cell_text(app, "acme-support", "last_active") == "2m ago"
        assert cell_text(app, "acme-support", "idle_deadline") == "in 8m"  # 600 s default
        assert cell_text(app, "bakery-bot", "idle_deadline") == "in 6m"  # own 900 s
        assert cell_text(app, "cedar-legal", "buffered") == "14"
        assert cell_text(app, "delta-fitness", "status") == "FAILED"
        assert cell_text(app, "harbor-pilots", "age") == "200d"
        assert table.border_title == "tenants(all)[20]"


async def test_slash_filters_enter_keeps_escape_clears(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.has_focus
        await pilot.press(*"dental")
        assert row_ids(app) == ["echo-dental", "maple-dental"]
        await pilot.press("enter")
        assert not box.display and app.tenants_screen.table.has_focus
        assert row_ids(app) == ["echo-dental", "maple-dental"]
        assert app.tenants_screen.table.border_title == "tenants(/dental)[2]"
        # Label and status terms combine.
        await pilot.press("slash")
        box.value = "plan=pro running"
        await pilot.press("enter")
        assert row_ids(app) == ["juniper-vet", "maple-dental"]
        await pilot.press("escape")
        assert len(row_ids(app)) == 20
        assert app.tenants_screen.table.border_title == "tenants(all)[20]"


async def test_escape_in_the_filter_box_clears_and_closes_it(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("slash", *"failed")
        assert row_ids(app) == ["delta-fitness", "lumen-optics"]
        await pilot.press("escape")
        assert not app.screen.query_one("#filter", Input).display
        assert len(row_ids(app)) == 20


async def test_d_describes_the_selected_tenant(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "cedar-legal", "d")
        assert isinstance(app.screen, DescribeScreen)
        screen = app.screen
        await wait_until(pilot, lambda: screen.details is not None, "describe")
        record = static_text(app, "#describe-record")
        assert "cedar-legal" in record and "billing hold" in record and "suspended" in record
        assert "bot_token" not in record.replace("has_bot_token", "")
        assert static_text(app, "#describe-buffer") == "14 pending, 0 dead letters"
        events = static_text(app, "#describe-events")
        assert "wake" in events and "reason=message" in events and "created" in events
        # ctrl+r fetches again; Esc goes back to the table with the same row selected.
        calls = source.calls.count(("describe", "cedar-legal"))
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: source.calls.count(("describe", "cedar-legal")) > calls)
        await pilot.press("escape")
        assert isinstance(app.screen, TenantsScreen)
        assert app.tenants_screen.selected_tenant() == "cedar-legal"


async def test_enter_on_a_row_describes_it(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "ivy-books", "enter")
        assert isinstance(app.screen, DescribeScreen) and app.screen.tenant_id == "ivy-books"


async def test_describe_follows_watch_changes(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("d")  # acme-support, the first row
        screen = app.screen
        assert isinstance(screen, DescribeScreen)
        await wait_until(pilot, lambda: screen.details is not None)
        await source.sleep("acme-support")  # someone else put it to sleep
        await wait_until(
            pilot,
            lambda: screen.details is not None and screen.details.record["status"] == "idle",
            "describe to reload after the watch event",
        )


async def test_l_streams_logs_and_escape_stops_them(app: OtmApp, source: FakeTenantSource) -> None:
    source.log_lines["bakery-bot"] = ["booting gateway", "listening on :18789"]
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "bakery-bot", "l")
        assert isinstance(app.screen, LogsScreen)
        log = app.screen.query_one(Log)
        await wait_until(pilot, lambda: log.line_count >= 2, "history")
        source.push_log("bakery-bot", "turn finished in 2.1s")
        await wait_until(pilot, lambda: log.line_count >= 3, "a followed line")
        assert list(log.lines) == [
            "booting gateway",
            "listening on :18789",
            "turn finished in 2.1s",
        ]
        assert ("logs", ("bakery-bot", True, 600.0)) in source.calls
        # ctrl+r reconnects: the log is cleared and streamed again.
        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: source.calls.count(("logs", ("bakery-bot", True, 600.0))) == 2
        )
        await wait_until(pilot, lambda: log.line_count == 3, "the history again")
        await pilot.press("escape")
        assert isinstance(app.screen, TenantsScreen)
        await wait_until(pilot, lambda: source.log_followers == 0, "the stream to close")


async def test_l_from_describe_opens_logs(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("d", "l")
        assert isinstance(app.screen, LogsScreen) and app.screen.tenant_id == "acme-support"
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, TenantsScreen)


async def test_logs_of_an_unknown_tenant_end_with_the_error(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        app.open_logs("ghost")
        await pilot.pause()
        log = app.screen.query_one(Log)
        await wait_until(pilot, lambda: log.line_count == 1)
        assert "tenant 'ghost' not found" in log.lines[0]


async def test_w_wakes_the_selected_tenant(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "alpine-tours", "w")
        await wait_until(pilot, lambda: ("wake", "alpine-tours") in source.calls)
        # The 202 answer carries the old record; the watch's newer version wins.
        await wait_until(pilot, lambda: cell_text(app, "alpine-tours", "status") == "provisioning")
        await pilot.pause(0.1)
        assert cell_text(app, "alpine-tours", "status") == "provisioning"


async def test_s_sleeps_the_selected_tenant(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "dune-coffee", "s")
        await wait_until(pilot, lambda: ("sleep", "dune-coffee") in source.calls)
        await wait_until(pilot, lambda: cell_text(app, "dune-coffee", "status") == "idle")
        assert cell_text(app, "dune-coffee", "endpoint") == "-"


async def test_ctrl_d_confirm_defaults_to_no(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        await press_on(pilot, app, "kite-school", "ctrl+d")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        buttons = list(dialog.query(Button))
        assert [b.id for b in buttons] == ["no", "yes"]
        assert buttons[0].has_focus
        assert "kite-school" in str(dialog.query_one("#question", Static).content)
        await pilot.press("enter")  # a reflex Enter answers No
        assert isinstance(app.screen, TenantsScreen)
        await pilot.pause(0.1)
        assert not any(call[0] == "delete" for call in source.calls)
        assert "kite-school" in row_ids(app)


async def test_ctrl_d_escape_and_n_also_answer_no(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        for key in ("escape", "n"):
            await pilot.press("ctrl+d")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press(key)
            assert isinstance(app.screen, TenantsScreen)
        await pilot.pause(0.1)
        assert not any(call[0] == "delete" for call in source.calls)


async def test_ctrl_d_yes_deletes(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        # Focus moves to "Yes, delete".
        await press_on(pilot, app, "kite-school", "ctrl+d", "tab", "enter")
        await wait_until(pilot, lambda: ("delete", "kite-school") in source.calls)
        await wait_until(pilot, lambda: "kite-school" not in row_ids(app))
        assert len(row_ids(app)) == 19
        # The cursor stays on a row so the next key works.
        assert app.tenants_screen.selected_tenant() is not None


async def test_ctrl_r_reconnects_the_watch(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        assert source.watch_calls == 1
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: source.watch_calls == 2 and source.open_watches == 1)
        assert app.connection.state == "live"


async def test_question_mark_lists_every_binding(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(static_text(app, f"#{s.id}") for s in app.screen.query(".help-section"))
        for owner in (TenantsScreen, OtmApp, DescribeScreen, LogsScreen, ConfigScreen):
            for binding in owner.BINDINGS:
                assert binding.description in shown and binding.tooltip in shown  # type: ignore[union-attr]
        for command in ("wake NAME", "sleep NAME", "tenants", "config", "health", "quit"):
            assert command in shown
        assert "^d" in shown and "(read-only)" not in shown
        await pilot.press("escape")
        assert isinstance(app.screen, TenantsScreen)


async def test_c_opens_config_and_escape_leaves_it(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:
        screen = await open_config(pilot)
        assert screen.query_one("#input-warm_pool_target", Input).value == "3"
        assert screen.query_one("#input-default_idle_timeout_s", Input).value == "10m"
        await pilot.press("escape")
        assert isinstance(app.screen, TenantsScreen)
        assert not any(call[0] == "set_config" for call in source.calls)


async def test_config_editor_shows_validation_errors_inline(
    app: OtmApp, source: FakeTenantSource
) -> None:
    async with running(app, SIZE) as pilot:
        screen = await open_config(pilot)
        field = screen.query_one("#input-warm_pool_target", Input)
        assert field.has_focus
        # Client side: not a number at all; nothing is sent.
        await pilot.press("ctrl+u", "ctrl+s")
        assert static_text(app, "#error-warm_pool_target") == "warm_pool_target must be an integer"
        assert not any(call[0] == "set_config" for call in source.calls)
        # Daemon side: out of range; the daemon's reason lands under the field.
        await pilot.press(*"5000", "ctrl+s")
        await wait_until(pilot, lambda: static_text(app, "#error-warm_pool_target") != "")
        assert static_text(app, "#error-warm_pool_target") == (
            "warm_pool_target must be between 0 and 1000"
        )
        assert ("set_config", {"warm_pool_target": 5000}) in source.calls
        assert isinstance(app.screen, ConfigScreen)
        # Unchanged values are not sent; a valid change saves and closes the editor.
        await pilot.press("ctrl+u", "ctrl+r")
        await wait_until(pilot, lambda: screen.query("#input-warm_pool_target"))
        await wait_until(pilot, lambda: static_text(app, "#error-warm_pool_target") == "")
        await pilot.press("ctrl+s")
        assert static_text(app, "#config-error") == "nothing changed"
        app.screen.query_one("#input-max_wake_attempts", Input).value = "7"
        # One field more (max_concurrent_wakes) pushes Save below the fold at SIZE.
        app.screen.query_one("#save").scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click("#save")
        await wait_until(
            pilot, lambda: isinstance(app.screen, TenantsScreen), "the editor to close"
        )
        assert ("set_config", {"max_wake_attempts": 7}) in source.calls
        assert source.config.max_wake_attempts == 7
        assert source.config.warm_pool_target == 3


async def test_config_cancel_button_leaves(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await open_config(pilot)
        app.screen.query_one("#cancel").scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click("#cancel")
        assert isinstance(app.screen, TenantsScreen)


@pytest.mark.parametrize("key", ["q", "ctrl+c"])  # ctrl+c as in k9s
async def test_q_and_ctrl_c_quit(app: OtmApp, key: str) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert not app.is_running


async def test_colon_runs_commands(app: OtmApp, source: FakeTenantSource) -> None:
    async with running(app, SIZE) as pilot:

        async def command(text: str) -> None:
            await pilot.press("colon")
            assert isinstance(app.screen, CommandPrompt)
            # Typing is covered by the completion test; here the text is set at once
            # (each simulated key costs a full render).
            app.screen.query_one("#command", Input).value = text
            await pilot.press("enter")

        await command("health")
        assert isinstance(app.screen, HealthScreen)
        shown = static_text(app, "#health-detail")
        assert "warm_pool.target" in shown and "registry.kind" in shown and "sqlite" in shown
        await pilot.press("escape")
        assert isinstance(app.screen, TenantsScreen)
        await command("config")
        assert isinstance(app.screen, ConfigScreen)
        await pilot.press("escape")  # the config form has the focus: ":" would be typed
        await command("describe orbit-cafe")
        await command("tenants")
        assert isinstance(app.screen, TenantsScreen) and len(app.screen_stack) == 1
        await command("help")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await command("describe orbit-cafe")
        assert isinstance(app.screen, DescribeScreen) and app.screen.tenant_id == "orbit-cafe"
        await command("logs orbit-cafe")
        assert isinstance(app.screen, LogsScreen) and app.screen.tenant_id == "orbit-cafe"
        await command("t")  # an alias
        assert isinstance(app.screen, TenantsScreen)
        await command("wake pine-hostel")
        await wait_until(pilot, lambda: ("wake", "pine-hostel") in source.calls)
        await command("sleep orbit-cafe")
        await wait_until(pilot, lambda: ("sleep", "orbit-cafe") in source.calls)
        await command("delete harbor-pilots")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await command("wake nobody")
        await command("frobnicate")
        await pilot.pause(0.1)
        assert not any(call == ("wake", "nobody") for call in source.calls)
        assert ("delete", "harbor-pilots") not in source.calls
        messages = [n.message for n in app._notifications]
        assert "no tenant named 'nobody'" in messages
        assert any(m.startswith("unknown command 'frobnicate'") for m in messages)
        await command("quit")
        assert not app.is_running


async def test_command_line_completes_and_escape_cancels(app: OtmApp) -> None:
    async with running(app, SIZE) as pilot:
        await pilot.press("colon", *"wake orb")
        box = app.screen.query_one("#command", Input)
        await wait_until(pilot, lambda: box._suggestion == "wake orbit-cafe", "a suggestion")
        await pilot.press("right")  # accept the suggestion
        assert box.value == "wake orbit-cafe"
        await pilot.press("escape")
        assert isinstance(app.screen, TenantsScreen)


async def test_usage_column_and_describe_section(source: FakeTenantSource) -> None:
    source.usage_items = {
        "acme-support": {
            "tenant_id": "acme-support",
            "requests": 4,
            "prompt_tokens": 1200,
            "completion_tokens": 345,
            "total_tokens": 1545,
            "cost_usd": 0.0123,
            "models": {"stub-model": {"requests": 4, "total_tokens": 1545}},
        }
    }
    app = build_app(source)
    async with running(app, (160, 30)) as pilot:
        await wait_until(pilot, lambda: cell_text(app, "acme-support", "usage") != "-", "usage")
        assert cell_text(app, "acme-support", "usage") == "1.5k tok $0.01"
        assert cell_text(app, "bakery-bot", "usage") == "-"
        await press_on(pilot, app, "acme-support", "d")
        screen = app.screen
        assert isinstance(screen, DescribeScreen)
        await wait_until(pilot, lambda: screen.details is not None, "describe")
        assert static_text(app, "#describe-usage") == (
            "4 requests, 1200 prompt + 345 completion tokens, $0.0123\n"
            "  stub-model: 4 requests, 1545 tokens"
        )
