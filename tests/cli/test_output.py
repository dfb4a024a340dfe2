"""Pure pieces of the CLI: durations, kubectl ages, tables, global-flag hoisting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from otm.cli import hoist_global_options
from otm.output import (
    Format,
    format_duration,
    human_age,
    parse_duration,
    render_tenants,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2d", 172800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "m10", "1h 30m", "-5m", "1.5h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_duration_uses_the_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (45, 90, 600, 5400, 7200, 86400, None)] == [
        "45s",
        "90s",
        "10m",
        "90m",
        "2h",
        "1d",
        "<none>",
    ]


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (300, "5m"),
        (330, "5m30s"),
        (3599, "59m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60 * 20, "3h20m"),
        (10 * 3600, "10h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400 + 20 * 86400, "3y20d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_age_matches_kubectl(seconds: int, age: str) -> None:
    assert human_age(seconds) == age


def test_tenant_table_and_documents() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    tenant = {
        "tenant_id": "acme",
        "status": "running",
        "endpoint": "http://10.0.0.7:8787/telegram-webhook",
        "last_active_at": (now - timedelta(minutes=5)).isoformat(),
        "created_at": (now - timedelta(days=2)).isoformat(),
        "pod_name": "openclaw-acme",
        "idle_timeout_s": 600,
        "labels": {"tier": "gold"},
        "status_reason": "",
        "wake_attempts": 1,
    }
    table = render_tenants([tenant], Format.table, now=now).splitlines()
    assert [line.split() for line in table] == [
        ["NAME", "STATUS", "ENDPOINT", "LAST-ACTIVE", "AGE"],
        ["acme", "running", "http://10.0.0.7:8787/telegram-webhook", "5m", "2d"],
    ]
    wide = render_tenants([tenant], Format.wide, now=now).splitlines()
    assert wide[1].split()[5:] == ["openclaw-acme", "10m", "tier=gold", "<none>", "1", "default"]
    assert yaml.safe_load(render_tenants([tenant], Format.yaml, now=now, single=True)) == tenant
    assert render_tenants([tenant, tenant], Format.name, now=now) == "tenant/acme\ntenant/acme"


def test_global_options_hoisted_except_for_the_daemon() -> None:
    assert hoist_global_options(["tenant", "list", "--server", "U", "-o", "json"]) == [
        "--server",
        "U",
        "tenant",
        "list",
        "-o",
        "json",
    ]
    assert hoist_global_options(["logs", "x", "--token=T", "--data-dir", "D"]) == [
        "--token=T",
        "--data-dir",
        "D",
        "logs",
        "x",
    ]
    assert hoist_global_options(["daemon", "--data-dir", "D"]) == ["daemon", "--data-dir", "D"]
    assert hoist_global_options(["logs", "--", "--server"]) == ["logs", "--", "--server"]
