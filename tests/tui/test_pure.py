"""Pure logic of the dashboard: columns, cells, durations, filters, commands, SSE, config
validation helpers, health lines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rich.text import Text
from textual.binding import Binding

from otm.tui import view
from otm.tui.api_source import SseParser, watch_event
from otm.tui.app import OtmApp
from otm.tui.commands import CommandError, CommandSuggester, parse_command
from otm.tui.config_screen import ConfigScreen, changed_values, error_field
from otm.tui.detail_screens import DescribeScreen, LogsScreen
from otm.tui.dialogs import CommandPrompt, ConfirmScreen, HealthScreen, HelpScreen
from otm.tui.health import Connection, connection_text, flow, health_text, status_rows
from otm.tui.main_screen import TenantsScreen
from otm.tui.source import Delete, Snapshot, SourceUnavailable, Upsert
from tests.tui.fake_source import NOW, FakeTenantSource, mixed_tenants, tenant


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (600, "10m"),
        (179 * 60, "179m"), (3 * 3600, "3h"), (5 * 3600 + 1800, "5h30m"), (20 * 3600, "20h"),
        (3 * 86400 + 4 * 3600, "3d4h"), (12 * 86400, "12d"), (800 * 86400, "2y"), (-5, "0s"),
    ],
)  # fmt: skip
def test_human_duration_matches_kubectl(seconds: int, shown: str) -> None:
    assert view.human_duration(timedelta(seconds=seconds)) == shown


def test_columns_degrade_with_width() -> None:
    def keys(width: int) -> list[str]:
        return [c.key for c in view.columns_for_width(width)]

    every = ["name", "status", "endpoint", "last_active", "idle_deadline", "buffered", "usage",
             "age", "reason"]  # fmt: skip
    assert keys(200) == every
    no_usage = [k for k in every if k != "usage"]
    assert keys(141) == no_usage  # USAGE/COST goes first
    # NAME shrinks first (down to NAME_FLOOR), only then are columns dropped.
    shrunk = view.columns_for_width(130)
    assert [c.key for c in shrunk] == no_usage and shrunk[0].width == 14
    assert keys(126) == no_usage
    assert keys(125) == no_usage[:-1]  # then REASON
    assert keys(96) == no_usage[:-1]
    assert "endpoint" not in keys(95)
    assert keys(76) == ["name", "status", "last_active", "idle_deadline", "buffered", "age"]
    assert keys(20) == ["name", "status"]  # never below the two that identify a row
    # Spare width goes to NAME, up to its maximum.
    name = {c.key: c.width for c in view.columns_for_width(300)}["name"]
    assert name == view.NAME_MAX
    for width in (60, 76, 100, 106, 160):
        needed = sum(c.width + view.CELL_PADDING for c in view.columns_for_width(width))
        assert needed <= width


def test_row_cells_and_idle_deadline() -> None:
    columns = view.columns_for_width(200)
    running = tenant("acme", "running", ip="10.0.0.1", active_ago=timedelta(minutes=2))
    cells = view.row_cells(
        running.public(), columns, now=NOW, default_idle_timeout_s=600, buffered=3
    )
    plain = [getattr(c, "plain", c) for c in cells]
    assert plain == ["acme", "running", "10.0.0.1:8787", "2m ago", "in 8m", "3", "-", "3d", "-"]
    used = {"total_tokens": 12_345, "cost_usd": 0.0412}
    cells = view.row_cells(
        running.public(), columns, now=NOW, default_idle_timeout_s=600, buffered=0, usage=used
    )
    assert cells[6] == "12.3k tok $0.04"
    assert view.usage_text({"total_tokens": 999, "cost_usd": None}) == "999 tok"
    assert view.usage_text({"total_tokens": 2_500_000}) == "2.5M tok"
    overdue = tenant("late", "running", ip="10.0.0.2", active_ago=timedelta(minutes=12))
    assert view.idle_deadline(overdue.public(), 600) == NOW - timedelta(minutes=2)
    cells = view.row_cells(overdue.public(), columns, now=NOW, default_idle_timeout_s=600,
                           buffered=None)  # fmt: skip
    assert [getattr(c, "plain", c) for c in cells][4:6] == ["due 2m", "-"]
    # Only running tenants have a deadline; unknown config means unknown deadline.
    assert view.idle_deadline(tenant("idle").public(), 600) is None
    assert view.idle_deadline(running.public(), None) is None
    own = tenant("own", "running", ip="10.0.0.3", idle_timeout_s=60)
    assert view.idle_deadline(own.public(), 600) == NOW - timedelta(minutes=29)


def test_endpoint_or_pod() -> None:
    record = tenant("pod-only", "running").public()
    assert view.endpoint_or_pod(record) == "pod-only"
    assert view.endpoint_or_pod(tenant("x").public()) == "-"


def test_filter_terms_combine() -> None:
    tenants = {t.tenant_id: t.public() for t in mixed_tenants()}

    def ids(query: str) -> list[str]:
        return [t["tenant_id"] for t in view.visible_tenants(tenants, query)]

    assert len(ids("")) == 20
    assert ids("DENTAL") == ["echo-dental", "maple-dental"]
    assert ids("failed") == ["delta-fitness", "lumen-optics"]
    assert ids("plan=pro") == ["juniper-vet", "maple-dental"]
    assert ids("plan=pro running maple") == ["maple-dental"]
    assert ids("10.0.3.") == ["acme-support", "bakery-bot"]
    assert ids("nomatch") == []
    assert view.status_counts(tenants.values())["running"] == 7


def test_parse_command() -> None:
    assert parse_command("wake acme").name == "wake"
    assert parse_command(":wake acme").tenant_id == "acme"
    assert parse_command("q").name == "quit"
    assert parse_command("  cfg ").name == "config"
    for bad, message in (
        ("", "empty"),
        ("frob", "unknown command 'frob'"),
        ("wake", "usage: wake NAME"),
        ("wake a b", "usage: wake NAME"),
        ("health now", "takes no arguments"),
    ):
        with pytest.raises(CommandError, match=message):
            parse_command(bad)


async def test_command_suggester() -> None:
    suggester = CommandSuggester(lambda: ["orbit-cafe", "acme-support"])
    assert await suggester.get_suggestion("he") == "health"
    assert await suggester.get_suggestion("wake a") == "wake acme-support"
    assert await suggester.get_suggestion("logs orb") == "logs orbit-cafe"
    assert await suggester.get_suggestion("health x") is None
    assert await suggester.get_suggestion("zzz") is None


def test_sse_parser_and_watch_events() -> None:
    parser = SseParser()
    lines = [
        ": keepalive", "", "event: snapshot", 'data: {"items":', 'data: [{"tenant_id":"a"}]}', "",
        "event: tenant", 'data: {"type":"delete","tenant":{"tenant_id":"a"}}', "",
    ]  # fmt: skip
    events = [e for line in lines if (e := parser.feed(line)) is not None]
    assert events == [
        ("snapshot", '{"items":\n[{"tenant_id":"a"}]}'),
        ("tenant", '{"type":"delete","tenant":{"tenant_id":"a"}}'),
    ]
    assert watch_event(*events[0]) == Snapshot(({"tenant_id": "a"},))
    assert watch_event(*events[1]) == Delete("a")
    upsert = watch_event("tenant", '{"type":"upsert","tenant":{"tenant_id":"b"}}')
    assert upsert == Upsert({"tenant_id": "b"})
    assert watch_event("future-kind", "{}") is None
    with pytest.raises(SourceUnavailable):
        watch_event("tenant", "not json")


def test_config_helpers() -> None:
    current = {"warm_pool_target": 3, "max_wake_attempts": 5}
    assert changed_values(current, {"warm_pool_target": " 4 ", "max_wake_attempts": "5"}) == (
        {"warm_pool_target": 4},
        {},
    )
    assert changed_values(current, {"warm_pool_target": "", "max_wake_attempts": "-"})[1] == {
        "warm_pool_target": "warm_pool_target must be an integer",
        "max_wake_attempts": "max_wake_attempts must be an integer",
    }
    keys = ["warm_pool_target", "default_idle_timeout_s"]
    assert error_field("default_idle_timeout_s must be between 30 and 604800", keys) == (
        "default_idle_timeout_s"
    )
    assert error_field("no config keys given", keys) is None


async def test_health_lines_from_status() -> None:
    status = await FakeTenantSource(mixed_tenants()).get_status()
    wide = health_text(status).plain
    assert wide.count("\n") == 0
    assert "warm pool 2/3" in wide and "registry sqlite ok" in wide
    narrow = health_text(status, width=78).plain
    lines = narrow.split("\n")
    assert len(lines) == 2 and all(len(line) <= 78 for line in lines)
    assert lines[-1].endswith("…")
    assert health_text(None).plain == "status: waiting for the daemon…"
    assert health_text(None, "cannot reach x").plain == "status: cannot reach x"
    stale = health_text(status, "timed out", width=200).plain
    assert stale.startswith("status: timed out (stale)")
    partial = health_text({"daemon": {"leader": False}, "registry": None}).plain
    assert "leader no" in partial and "registry ? ?" in partial
    assert ("warm_pool.target", "3") in status_rows(status)
    assert ("daemon.leader", "yes") in status_rows(status)


def test_connection_text() -> None:
    assert "● live" in connection_text(Connection("live"), "http://x").plain
    down = connection_text(Connection("disconnected", "refused", 3, 2.0), "http://x").plain
    assert down.endswith("disconnected, retrying in 2s (attempt 3): refused")


def test_flow_never_splits_a_chunk() -> None:
    chunks = [Text("aaaa"), Text("bbbb"), Text("cccc")]
    assert flow(chunks, 11, 2, gap=" ").plain == "aaaa bbbb\ncccc"
    assert flow(chunks, 11, 1, gap=" ").plain == "aaaa bbbb …"


def test_every_binding_has_an_id_and_a_tooltip() -> None:
    owners = (OtmApp, TenantsScreen, DescribeScreen, LogsScreen, ConfigScreen, ConfirmScreen,
              CommandPrompt, HelpScreen, HealthScreen)  # fmt: skip
    ids = []
    for owner in owners:
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.id and binding.tooltip, (owner.__name__, binding.key)
            ids.append(binding.id)
    assert len(ids) == len(set(ids))


def test_health_shows_the_wake_queue() -> None:
    status = {
        "daemon": {"version": "dev"},
        "wakes": {"ok": True, "cap": 10, "in_progress": 10, "queued": 37},
    }
    assert "wakes 10/10 · 37 queued" in health_text(status).plain
    assert "wakes" not in health_text({"daemon": {"version": "dev"}}).plain


def test_health_shows_the_image_rollout() -> None:
    rollout = {"image": "oc:v2", "status": "running", "wave": 2, "waves": 3, "fraction": 0.25}
    line = health_text({"daemon": {"version": "dev"}, "rollout": rollout}).plain
    assert "rollout oc:v2 running wave 2/3 (25%)" in line
    done = health_text({"rollout": {**rollout, "status": "rolled_back"}}).plain
    assert "rollout oc:v2 rolled back" in done and "wave" not in done
    assert "rollout" not in health_text({"daemon": {"version": "dev"}, "rollout": None}).plain
