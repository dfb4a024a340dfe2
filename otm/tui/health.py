"""Connection state and the daemon/warm-pool health lines, rendered from GET /v1/status.
Pure functions over plain data (the status JSON may lack fields an older daemon does not
know: every field is optional here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from rich.text import Text

from otm.tui.view import STATUS_STYLES, human_duration

ConnectionState = Literal["connecting", "live", "disconnected"]


@dataclass(frozen=True)
class Connection:
    state: ConnectionState = "connecting"
    reason: str = ""
    attempt: int = 0
    retry_in_s: float = 0.0


def connection_text(connection: Connection, server: str) -> Text:
    text = Text.assemble(("otm ", "bold"), (server, "cyan"), "  ")
    if connection.state == "live":
        text.append("● live", style="bold green")
    elif connection.state == "connecting":
        text.append("◌ connecting…", style="yellow")
    else:
        text.append("✖ disconnected, retrying", style="bold red")
        text.append(
            f" in {connection.retry_in_s:g}s (attempt {connection.attempt}): {connection.reason}",
            style="red",
        )
    return text


def _ok(value: Any) -> tuple[str, str]:
    if value is True:
        return "ok", "green"
    if value is False:
        return "down", "bold red"
    return "?", "dim"


def _section(status: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = status.get(name)
    return value if isinstance(value, Mapping) else {}


def health_chunks(status: Mapping[str, Any] | None, error: str | None = None) -> list[Text]:
    """Daemon, backends, warm pool and tenants by status, as pieces that are never split
    (the panel flows them into the lines it has)."""
    chunks: list[Text] = []
    if error:
        chunks.append(Text(f"status: {error}" + (" (stale)" if status else ""), style="red"))
    if status is None:
        return chunks or [Text("status: waiting for the daemon…", style="dim")]
    daemon = _section(status, "daemon")
    registry = _section(status, "registry")
    runtime = _section(status, "runtime")
    warm = _section(status, "warm_pool")

    text = Text.assemble(("daemon ", "bold"), str(daemon.get("version") or "dev"))
    uptime = daemon.get("uptime_s")
    if isinstance(uptime, int | float):
        text.append(f" · up {human_duration(timedelta(seconds=uptime))}")
    leader = daemon.get("leader")
    text.append(" · leader ")
    if leader is True:
        text.append("yes", style="green")
    elif leader is False:
        text.append("no", style="yellow")
    else:
        text.append("-", style="dim")
    chunks.append(text)
    chunks.append(Text.assemble(("redis ", "bold"), _ok(_section(status, "redis").get("ok"))))
    chunks.append(
        Text.assemble(
            ("registry ", "bold"), f"{registry.get('kind') or '?'} ", _ok(registry.get("ok"))
        )
    )
    text = Text.assemble(
        ("runtime ", "bold"), f"{runtime.get('kind') or '?'} ", _ok(runtime.get("ok"))
    )
    if runtime.get("instances") is not None:
        text.append(f" ({runtime['instances']} instances)")
    chunks.append(text)
    # The local pool tells ready (claimable) gateways from booting ones: count the ready.
    size, target = warm.get("ready", warm.get("size")), warm.get("target")
    pool_style = "green" if size is not None and target is not None and size >= target else "yellow"
    chunks.append(
        Text.assemble(("warm pool ", "bold"), (f"{_or_dash(size)}/{_or_dash(target)}", pool_style))
    )
    wakes = _section(status, "wakes")
    if wakes:
        queued = wakes.get("queued") or 0
        chunks.append(
            Text.assemble(
                ("wakes ", "bold"),
                f"{_or_dash(wakes.get('in_progress'))}/{_or_dash(wakes.get('cap'))}",
                (f" · {queued} queued", "yellow" if queued else "dim"),
            )
        )
    rollout = _section(status, "rollout")
    if rollout.get("image"):
        chunks.append(rollout_text(rollout))
    by_status = registry.get("tenants_by_status") or {}
    if isinstance(by_status, Mapping):
        total = sum(int(v) for v in by_status.values())
        chunks.append(Text.assemble(("tenants ", "bold"), str(total)))
        for name, count in by_status.items():
            chunks.append(Text(f"{name} {count}", style=STATUS_STYLES.get(str(name), "")))
    return chunks


ROLLOUT_STYLES = {
    "running": "cyan",
    "paused": "yellow",
    "rolling_back": "bold red",
    "rolled_back": "red",
    "completed": "green",
}


def rollout_text(rollout: Mapping[str, Any]) -> Text:
    """``rollout IMAGE running wave 2/3 (25%)``: the image rollout at a glance."""
    state = str(rollout.get("status") or "?")
    text = Text.assemble(
        ("rollout ", "bold"),
        f"{rollout.get('image')} ",
        (state.replace("_", " "), ROLLOUT_STYLES.get(state, "")),
    )
    if state in ("running", "paused"):
        fraction = rollout.get("fraction")
        share = f" ({fraction * 100:g}%)" if isinstance(fraction, int | float) else ""
        text.append(f" wave {_or_dash(rollout.get('wave'))}/{_or_dash(rollout.get('waves'))}")
        text.append(share)
    return text


def flow(chunks: list[Text], width: int, max_lines: int, gap: str = "   ") -> Text:
    """Fill up to ``max_lines`` lines of ``width`` cells with whole chunks; "…" marks the
    ones left out."""
    lines: list[Text] = [Text()]
    for chunk in chunks:
        line = lines[-1]
        needed = len(chunk) + (len(gap) if line else 0)
        if line and line.cell_len + needed > width:
            if len(lines) == max_lines:
                if line.cell_len + 2 <= width:
                    line.append(" …", style="dim")
                break
            line = Text()
            lines.append(line)
        if line:
            line.append(gap)
        line.append_text(chunk)
    return Text("\n").join(lines)


def health_text(
    status: Mapping[str, Any] | None,
    error: str | None = None,
    *,
    width: int = 1000,
    max_lines: int = 2,
) -> Text:
    return flow(health_chunks(status, error), width, max_lines)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def status_rows(status: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every field of the status document as ``(section.key, value)`` for the health screen."""
    rows: list[tuple[str, str]] = []
    for section, body in status.items():
        if isinstance(body, Mapping):
            for key, value in body.items():
                rows.append((f"{section}.{key}", _plain(value)))
        else:
            rows.append((section, _plain(body)))
    return rows


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)
