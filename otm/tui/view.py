"""Pure presentation logic of the tenant table: columns for a width, cells of a row,
filtering and kubectl-style durations. No Textual here, so it is tested as plain data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from rich.text import Text

from otm.tui.source import Record

STATUS_STYLES: dict[str, str] = {
    "running": "bold green",
    "provisioning": "bold yellow",
    "stopping": "yellow",
    "idle": "dim",
    "suspended": "magenta",
    "failed": "bold red",
    "deleted": "dim strike",
}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    priority: int
    """Lower is kept longer when the terminal is narrow (NAME and STATUS always stay)."""


NAME_MIN, NAME_MAX = 20, 40
NAME_FLOOR = 10
"""On a narrow terminal NAME gives up its width down to this before a column is dropped."""
COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME", NAME_MIN, 0),
    Column("status", "STATUS", 12, 0),
    Column("endpoint", "ENDPOINT/POD", 21, 5),
    Column("last_active", "LAST ACTIVE", 11, 4),
    Column("idle_deadline", "IDLE DEADLINE", 13, 2),
    Column("buffered", "BUFFERED", 8, 3),
    Column("usage", "USAGE/COST 24H", 15, 7),
    Column("age", "AGE", 7, 1),
    Column("reason", "REASON", 28, 6),
)
SORT_KEYS = ("name", "status", "reason", "last_active", "buffered", "age")
"""Columns the table sorts by (shift+letter, as in k9s)."""
CELL_PADDING = 2  # DataTable pads each cell by one on either side


def columns_for_width(width: int) -> list[Column]:
    """The columns that fit ``width`` cells. NAME shrinks first (down to NAME_FLOOR),
    then the least important columns are dropped; NAME takes what is left (up to
    NAME_MAX)."""
    shrink = NAME_MIN - NAME_FLOOR
    chosen = list(COLUMNS)
    for drop in sorted(COLUMNS, key=lambda c: -c.priority):
        if _needed(chosen) - shrink <= width or drop.priority == 0:
            break
        chosen.remove(drop)
    spare = width - _needed(chosen)
    name_width = max(min(NAME_MIN + spare, NAME_MAX), NAME_FLOOR)
    return [Column(c.key, c.label, name_width, 0) if c.key == "name" else c for c in chosen]


def _needed(columns: Iterable[Column]) -> int:
    return sum(c.width + CELL_PADDING for c in columns)


def human_duration(delta: timedelta) -> str:
    """kubectl's HumanDuration: 45s, 3m20s, 12m, 5h30m, 20h, 3d4h, 12d, 2y."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        seconds = 0
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def human_duration_s(seconds: float) -> str:
    return human_duration(timedelta(seconds=seconds))


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def idle_timeout_s(tenant: Record, default_idle_timeout_s: int | None) -> int | None:
    own = tenant.get("idle_timeout_s")
    return int(own) if own is not None else default_idle_timeout_s


def idle_deadline(tenant: Record, default_idle_timeout_s: int | None) -> datetime | None:
    """When the culler may sleep a running tenant: last activity + its idle timeout."""
    if tenant.get("status") != "running":
        return None
    last = parse_time(tenant.get("last_active_at"))
    timeout = idle_timeout_s(tenant, default_idle_timeout_s)
    if last is None or timeout is None:
        return None
    return last + timedelta(seconds=timeout)


def endpoint_or_pod(tenant: Record) -> str:
    endpoint = tenant.get("endpoint")
    if isinstance(endpoint, str) and endpoint:
        parts = urlsplit(endpoint)
        return parts.netloc or endpoint
    pod = tenant.get("pod_name")
    return str(pod) if pod else "-"


def status_text(status: str) -> Text:
    return Text(
        status.upper() if status == "failed" else status, style=STATUS_STYLES.get(status, "")
    )


def row_cells(
    tenant: Record,
    columns: Iterable[Column],
    *,
    now: datetime,
    default_idle_timeout_s: int | None,
    buffered: int | None,
    usage: Record | None = None,
) -> list[str | Text]:
    cells: list[str | Text] = []
    for column in columns:
        if column.key == "usage":
            cells.append(usage_text(usage))
            continue
        cells.append(
            _cell(
                column.key,
                tenant,
                now,
                default_idle_timeout_s=default_idle_timeout_s,
                buffered=buffered,
            )
        )
    return cells


def human_count(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def usage_text(usage: Record | None) -> str:
    """``12.3k tok $0.04`` (tokens through the model gateway in 24 h, estimated cost)."""
    if not usage:
        return "-"
    text = f"{human_count(int(usage.get('total_tokens') or 0))} tok"
    cost = usage.get("cost_usd")
    return text if cost is None else f"{text} ${float(cost):.2f}"


def _cell(
    key: str,
    tenant: Record,
    now: datetime,
    *,
    default_idle_timeout_s: int | None,
    buffered: int | None,
) -> str | Text:
    if key == "name":
        return str(tenant.get("tenant_id", "?"))
    if key == "status":
        return status_text(str(tenant.get("status", "?")))
    if key == "endpoint":
        return endpoint_or_pod(tenant)
    if key == "reason":
        reason = str(tenant.get("status_reason") or "")
        if not reason:
            return "-"
        return Text(reason, style="red") if tenant.get("status") == "failed" else reason
    if key == "last_active":
        last = parse_time(tenant.get("last_active_at"))
        return "-" if last is None else f"{human_duration(now - last)} ago"
    if key == "idle_deadline":
        deadline = idle_deadline(tenant, default_idle_timeout_s)
        if deadline is None:
            return "-"
        if deadline <= now:
            return Text(f"due {human_duration(now - deadline)}", style="yellow")
        return f"in {human_duration(deadline - now)}"
    if key == "buffered":
        if buffered is None:
            return "-"
        return Text(str(buffered), style="bold yellow") if buffered else "0"
    if key == "age":
        created = parse_time(tenant.get("created_at"))
        return "-" if created is None else human_duration(now - created)
    raise KeyError(key)


def matches(tenant: Record, query: str) -> bool:
    """Every whitespace-separated term must match: a ``key=value`` term matches a label,
    any other term is a case-insensitive substring of name, status or endpoint/pod."""
    labels = tenant.get("labels") or {}
    haystack = " ".join(
        (str(tenant.get("tenant_id", "")), str(tenant.get("status", "")), endpoint_or_pod(tenant))
    ).lower()
    for term in query.lower().split():
        if "=" in term:
            key, _, value = term.partition("=")
            if str(_lower_keys(labels).get(key, "")).lower() != value:
                return False
        elif term not in haystack:
            return False
    return True


def _lower_keys(labels: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in labels.items()}


def visible_tenants(
    tenants: Mapping[str, Record],
    query: str,
    *,
    sort_by: str = "name",
    descending: bool = False,
    buffered: Mapping[str, int | None] | None = None,
) -> list[Record]:
    """Tenants to show, sorted by name like k9s (or by ``sort_by``; ties by name)."""
    chosen = [t for t in tenants.values() if not query or matches(t, query)]
    by_name = sorted(chosen, key=lambda t: str(t.get("tenant_id", "")))
    if sort_by == "name":
        return list(reversed(by_name)) if descending else by_name
    counts = buffered or {}

    def key(tenant: Record) -> tuple[int, Any]:
        if sort_by == "buffered":
            count = counts.get(str(tenant.get("tenant_id")))
            return (count is None, count or 0)
        field = {"status": "status", "reason": "status_reason"}.get(sort_by)
        if field is not None:
            value = str(tenant.get(field) or "")
            return (not value, value)
        # Times ascending (oldest first); never-active tenants last.
        field = "last_active_at" if sort_by == "last_active" else "created_at"
        stamp = parse_time(tenant.get(field))
        return (stamp is None, stamp.timestamp() if stamp else 0.0)

    ordered = sorted(by_name, key=key)  # stable: ties stay by name
    return list(reversed(ordered)) if descending else ordered


def status_counts(tenants: Iterable[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tenant in tenants:
        status = str(tenant.get("status", "?"))
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))
