"""`otm tenant describe` and the dashboard's describe panel: one field list, so the CLI
and the TUI show the same fields in the same order; and the CLI's text rendering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from otm.output import (
    NONE,
    TablePrinter,
    _compact,
    age_since,
    format_duration,
    format_labels,
    human_age,
)


def _age(timestamp: Any, now: datetime) -> tuple[datetime | None, str]:
    if not isinstance(timestamp, str) or not timestamp:
        return None, NONE
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return None, NONE
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return then, f"{timestamp} ({age_since(timestamp, now)} ago)"


def idle_deadline_text(
    tenant: Mapping[str, Any], now: datetime, default_idle_timeout_s: int | None
) -> str:
    """When the culler may sleep a running tenant, or why there is no deadline."""
    if tenant.get("status") != "running":
        return NONE
    own = tenant.get("idle_timeout_s")
    timeout = own if own is not None else default_idle_timeout_s
    last, _ = _age(tenant.get("last_active_at"), now)
    if last is None or timeout is None:
        return "unknown"
    deadline = last + timedelta(seconds=int(timeout))
    left = (deadline - now).total_seconds()
    return f"in {human_age(left)}" if left > 0 else f"due ({human_age(-left)} ago)"


def describe_fields(
    tenant: Mapping[str, Any],
    buffer: Mapping[str, Any] | None,
    *,
    now: datetime,
    default_idle_timeout_s: int | None,
) -> list[tuple[str, str]]:
    """(label, value) rows; ``buffer`` is GET /v1/tenants/{id}/buffer (None: unknown)."""
    timeout = tenant.get("idle_timeout_s")
    pending = "unknown" if buffer is None else buffer.get("pending", "unknown")
    dead = "unknown" if buffer is None else buffer.get("dead_letters", 0)
    return [
        ("Name", str(tenant.get("tenant_id"))),
        ("Status", str(tenant.get("status"))),
        ("Reason", str(tenant.get("status_reason") or NONE)),
        ("Labels", format_labels(tenant.get("labels"))),
        ("Endpoint", str(tenant.get("endpoint") or NONE)),
        ("Gateway", str(tenant.get("gateway_url") or NONE)),
        ("Pod", str(tenant.get("pod_name") or NONE)),
        ("Image", str(tenant.get("image") or "default")),
        ("Idle Timeout", format_duration(timeout) if timeout is not None else "default"),
        ("Idle Deadline", idle_deadline_text(tenant, now, default_idle_timeout_s)),
        ("Bot Token", "set" if tenant.get("has_bot_token") else "not set"),
        ("Wake Attempts", str(tenant.get("wake_attempts", 0))),
        ("Buffered", str(pending)),
        ("Dead Letters", str(dead)),
        ("Created", _age(tenant.get("created_at"), now)[1]),
        ("Last Active", _age(tenant.get("last_active_at"), now)[1]),
        ("Updated", _age(tenant.get("updated_at"), now)[1]),
        ("Version", str(tenant.get("version"))),
    ]


def render_describe(
    tenant: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    buffer: Mapping[str, Any] | None,
    *,
    now: datetime,
    default_idle_timeout_s: int | None = None,
) -> str:
    """`kubectl describe`-like text: the record, then recent events. ``buffer`` is
    `GET /v1/tenants/{id}/buffer` (None if the daemon could not say)."""
    fields = describe_fields(tenant, buffer, now=now, default_idle_timeout_s=default_idle_timeout_s)
    width = max(len(k) for k, _ in fields) + 2
    lines = [f"{k + ':':<{width}}{v}" for k, v in fields]
    lines.append("Events:")
    if not events:
        lines.append("  <none>")
    else:
        rows = [_event_row(e, now) for e in events]
        table = TablePrinter(("AGE", "KIND", "DETAILS"))
        lines.extend("  " + line for line in table.render(rows).splitlines())
    return "\n".join(lines)


_EVENT_META = {"tenant_id", "kind", "id"}


def _event_row(event: Mapping[str, Any], now: datetime) -> list[str]:
    age = NONE
    event_id = str(event.get("id", ""))
    millis = event_id.split("-", 1)[0]
    if millis.isdigit():
        age = human_age(now.timestamp() - int(millis) / 1000)
    details = " ".join(f"{k}={_compact(v)}" for k, v in event.items() if k not in _EVENT_META)
    return [age, str(event.get("kind", "")), details or NONE]
