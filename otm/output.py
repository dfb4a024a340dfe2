"""Renderers for `-o table|wide|json|yaml|name` and kubectl-style ages and durations.

Pure functions from API dicts to text; the commands print the result on stdout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

NONE = "<none>"


class Format(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


class DocFormat(StrEnum):
    """Formats for things that are not lists of objects (config, status)."""

    table = "table"
    json = "json"
    yaml = "yaml"


# -- durations -------------------------------------------------------------------
_DURATION_RE = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``10m``, ``1h30m``, ``2d`` or a bare number of seconds."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    pos, total = 0, 0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 10m, 1h, 2d)")
    return total


def format_duration(seconds: int | float | None) -> str:
    """Compact exact duration: 600 → 10m, 90 → 90s, 7200 → 2h."""
    if seconds is None:
        return NONE
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_MINUTE, _HOUR, _DAY, _YEAR = 60, 3600, 86400, 365 * 86400
_UNIT_SECONDS = {"s": 1, "m": _MINUTE, "h": _HOUR, "d": _DAY, "y": _YEAR}
# kubectl's HumanDuration steps: below this age, show the major unit (and the minor one).
_AGE_STEPS = (
    (2 * _MINUTE, "s", ""),
    (10 * _MINUTE, "m", "s"),
    (3 * _HOUR, "m", ""),
    (8 * _HOUR, "h", "m"),
    (2 * _DAY, "h", ""),
    (8 * _DAY, "d", "h"),
    (2 * _YEAR, "d", ""),
    (8 * _YEAR, "y", "d"),
)


def human_age(seconds: float) -> str:
    """kubectl's HumanDuration: 59s, 5m30s, 3h, 2d5h, 1y20d."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    major, minor = next(((a, b) for below, a, b in _AGE_STEPS if secs < below), ("y", ""))
    shown = f"{secs // _UNIT_SECONDS[major]}{major}"
    rest = (secs % _UNIT_SECONDS[major]) // _UNIT_SECONDS[minor] if minor else 0
    return f"{shown}{rest}{minor}" if rest else shown


def human_size(size: int) -> str:
    """Bytes for people: 512B, 3.4KiB, 12.0MiB, 1.2GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GiB"


def age_since(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return NONE
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return NONE
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return human_age((now - then).total_seconds())


# -- generic documents -----------------------------------------------------------
def to_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=False)


def to_yaml(doc: Any) -> str:
    import yaml  # only when asked for: keeps the common path light

    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)).rstrip("\n")


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, headers_on: bool = True
) -> str:
    return TablePrinter(headers, show_headers=headers_on).render(list(rows))


class TablePrinter:
    """kubectl-style columns (3 spaces apart). Remembers widths so that rows printed
    later (watch) line up with the first table."""

    GAP = "   "

    def __init__(self, headers: Sequence[str], *, show_headers: bool = True) -> None:
        self.headers = list(headers)
        self.show_headers = show_headers
        self.widths = [len(h) for h in headers]

    def render(self, rows: Sequence[Sequence[str]]) -> str:
        for row in rows:
            self.widths = [max(w, len(cell)) for w, cell in zip(self.widths, row, strict=True)]
        lines = [self.row(self.headers)] if self.show_headers else []
        lines.extend(self.row(row) for row in rows)
        return "\n".join(lines)

    def row(self, cells: Sequence[str]) -> str:
        padded = [cell.ljust(w) for cell, w in zip(cells, self.widths, strict=True)]
        return self.GAP.join(padded).rstrip()


# -- tenants ---------------------------------------------------------------------
TENANT_HEADERS = ("NAME", "STATUS", "ENDPOINT", "LAST-ACTIVE", "AGE")
TENANT_WIDE_HEADERS = (
    "NAME",
    "STATUS",
    "ENDPOINT",
    "LAST-ACTIVE",
    "AGE",
    "POD",
    "IDLE-TIMEOUT",
    "LABELS",
    "REASON",
    "WAKES",
    "INGRESS",
)


def format_labels(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def tenant_row(tenant: Mapping[str, Any], *, wide: bool, now: datetime) -> list[str]:
    row = [
        str(tenant.get("tenant_id", "")),
        str(tenant.get("status") or NONE),
        str(tenant.get("endpoint") or NONE),
        age_since(tenant.get("last_active_at"), now),
        age_since(tenant.get("created_at"), now),
    ]
    if wide:
        timeout = tenant.get("idle_timeout_s")
        row += [
            str(tenant.get("pod_name") or NONE),
            format_duration(timeout) if timeout is not None else "default",
            format_labels(tenant.get("labels")),
            str(tenant.get("status_reason") or NONE),
            str(tenant.get("wake_attempts", 0)),
            str(tenant.get("ingress") or "default"),
        ]
    return row


def tenant_name(tenant: Mapping[str, Any]) -> str:
    return f"tenant/{tenant.get('tenant_id', '')}"


def tenants_document(items: Sequence[Mapping[str, Any]], *, single: bool = False) -> Any:
    """What json/yaml/jsonpath print: ``{"items": [...]}``, or one tenant bare (``single``)."""
    return dict(items[0]) if single and len(items) == 1 else {"items": list(items)}


def render_tenants(
    items: Sequence[Mapping[str, Any]],
    fmt: Format,
    *,
    now: datetime,
    single: bool = False,
    headers: bool = True,
) -> str:
    """A list of tenants (``single``: one object, which json/yaml print bare)."""
    if fmt in (Format.json, Format.yaml):
        doc = tenants_document(items, single=single)
        return to_json(doc) if fmt == Format.json else to_yaml(doc)
    if fmt == Format.name:
        return "\n".join(tenant_name(t) for t in items)
    wide = fmt == Format.wide
    if not items:
        return ""
    table = TablePrinter(TENANT_WIDE_HEADERS if wide else TENANT_HEADERS, show_headers=headers)
    return table.render([tenant_row(t, wide=wide, now=now) for t in items])


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


# -- config and status -------------------------------------------------------------
def render_config(config: Mapping[str, Any], fmt: DocFormat) -> str:
    if fmt == DocFormat.json:
        return to_json(dict(config))
    if fmt == DocFormat.yaml:
        return to_yaml(dict(config))
    return render_table(("KEY", "VALUE"), [(k, _compact(v)) for k, v in config.items()])


def _ok(flag: Any) -> str:
    if flag is None:
        return "unknown"
    return "ok" if flag else "FAILING"


def render_status(status: Mapping[str, Any], fmt: DocFormat) -> str:
    if fmt == DocFormat.json:
        return to_json(dict(status))
    if fmt == DocFormat.yaml:
        return to_yaml(dict(status))
    daemon = status.get("daemon") or {}
    redis = status.get("redis") or {}
    registry = status.get("registry") or {}
    runtime = status.get("runtime") or {}
    store = status.get("state_store") or {}
    pool = status.get("warm_pool") or {}
    config = status.get("config") or {}
    by_status = registry.get("tenants_by_status") or {}
    leader = daemon.get("leader")
    uptime = daemon.get("uptime_s")
    rows = [
        (
            "daemon",
            "ok",
            f"version {daemon.get('version') or NONE}, pid {daemon.get('pid')}, "
            f"up {human_age(uptime) if uptime is not None else NONE}, "
            f"leader {'unknown' if leader is None else ('yes' if leader else 'no')}",
        ),
        ("redis", _ok(redis.get("ok")), redis.get("error") or ""),
        (
            "registry",
            _ok(registry.get("ok")),
            f"{registry.get('kind')}, {sum(by_status.values())} tenants"
            + (
                " (" + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) + ")"
                if by_status
                else ""
            ),
        ),
        (
            "state-store",
            _ok(store.get("ok")),
            ", ".join(filter(None, [store.get("kind"), store.get("reason")])),
        ),
        (
            "runtime",
            _ok(runtime.get("ok")),
            f"{runtime.get('kind')}, {_count(runtime.get('instances'))} instances",
        ),
        ("warm-pool", "ok", _warm_pool_details(pool)),
        ("config", "ok", " ".join(f"{k}={_compact(v)}" for k, v in config.items())),
    ]
    wakes = status.get("wakes")
    if wakes:
        rows.append(
            (
                "wakes",
                _ok(wakes.get("ok")),
                f"{_count(wakes.get('in_progress'))}/{_count(wakes.get('cap'))} in progress, "
                f"{_count(wakes.get('queued'))} queued",
            )
        )
    rollout = status.get("rollout")
    if rollout and rollout.get("image"):
        details = str(rollout["image"])
        if rollout.get("status") in ("running", "paused"):
            details += f", wave {rollout.get('wave')}/{rollout.get('waves')}"
        rows.append(("rollout", str(rollout.get("status")), details))
    return render_table(("COMPONENT", "STATE", "DETAILS"), rows)


def _warm_pool_details(pool: Mapping[str, Any]) -> str:
    if "ready" in pool:  # the local pool tells ready (claimable) from booting gateways
        return (
            f"{_count(pool.get('ready'))}/{_count(pool.get('target'))} ready, "
            f"{_count(pool.get('booting'))} booting"
        )
    return f"{_count(pool.get('size'))}/{_count(pool.get('target'))} ready"


def _count(value: Any) -> str:
    return NONE if value is None else str(value)


# -- audit log -------------------------------------------------------------------
AUDIT_HEADERS = ["TIME", "ACTOR", "SOURCE", "TENANT", "ACTION", "OUTCOME", "CHANGES"]


def _audit_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str) and value:
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))  # "" shows as ""


def format_changes(changes: Mapping[str, Mapping[str, Any]] | None) -> str:
    """``status: idle→suspended, bot_token: ***→***`` (the daemon has masked the secrets)."""
    return ", ".join(
        f"{name}: {_audit_value(change.get('before'))}→{_audit_value(change.get('after'))}"
        for name, change in (changes or {}).items()
    )


def format_outcome(entry: Mapping[str, Any]) -> str:
    if entry.get("outcome") == "ok":
        return "ok"
    return f"error {entry.get('status', '')}".strip()


def audit_row(entry: Mapping[str, Any]) -> list[str]:
    return [
        str(entry.get("time") or "")[:19].replace("T", " "),
        str(entry.get("actor") or "-"),
        str(entry.get("source") or "-"),
        str(entry.get("tenant") or "-"),
        str(entry.get("action") or ""),
        format_outcome(entry),
        format_changes(entry.get("changes")) or "-",
    ]
