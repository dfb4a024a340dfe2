"""Per-tenant screens: describe (`d`) and logs (`l`). Each fetches in its own workers,
which Textual cancels when the screen is popped (Esc), closing the connection."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Log, Static

from otm.describe_view import describe_fields
from otm.tui import view
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap
from otm.tui.loading import LoadingScreen
from otm.tui.messages import TenantActionRequested
from otm.tui.source import BufferInfo, Record, SourceError, TenantDetails
from otm.tui.state import DashboardState

RECORD_FIELDS = (
    "tenant_id",
    "status",
    "status_reason",
    "endpoint",
    "gateway_url",
    "pod_name",
    "image",
    "labels",
    "idle_timeout_s",
    "wake_attempts",
    "has_bot_token",
    "created_at",
    "updated_at",
    "last_active_at",
    "version",
)
RECENT_EVENTS = 20
LOGS_SINCE_S = 600.0
LOG_MAX_LINES = 10_000
SINCE_CHOICES: dict[str, float | None] = {
    "0": None,
    "1": 60.0,
    "2": 300.0,
    "3": 900.0,
    "4": 1800.0,
    "5": 3600.0,
}
"""k9s's log ranges: 0 everything, 1 one minute … 5 one hour."""
_STAMP_LEN = len("2026-01-01T00:00:00.000000Z ")


def strip_stamp(line: str) -> str:
    """The line without the local runtime's ISO-8601 prefix (if it has one)."""
    head = line[:_STAMP_LEN]
    if len(head) == _STAMP_LEN and head[4] == "-" and head[10] == "T" and head.endswith("Z "):
        return line[_STAMP_LEN:]
    return line


def shown_lines(lines: list[str], *, timestamps: bool, wrap_width: int | None) -> list[str]:
    """What the log widget shows for the raw ``lines`` under the toggles."""
    out: list[str] = []
    for line in lines:
        text = line if timestamps else strip_stamp(line)
        if wrap_width is None or wrap_width < 10 or len(text) <= wrap_width:
            out.append(text)
            continue
        out.extend(text[i : i + wrap_width] for i in range(0, len(text), wrap_width))
    return out


def event_time(event: Record) -> datetime | None:
    """Redis stream ids start with the append time in ms: the event's timestamp."""
    stream_id = str(event.get("id", ""))
    millis = stream_id.split("-", 1)[0]
    if not millis.isdigit():
        return view.parse_time(event.get("at"))
    return datetime.fromtimestamp(int(millis) / 1000, UTC)


def record_table(
    record: Record,
    *,
    now: datetime,
    default_idle_timeout_s: int | None,
    buffer: BufferInfo | None = None,
) -> Table:
    """The same fields, in the same order, as `otm tenant describe` (otm/describe_view.py)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    buffer_doc = (
        None if buffer is None else {"pending": buffer.pending, "dead_letters": buffer.dead_letters}
    )
    for label, value in describe_fields(
        record, buffer_doc, now=now, default_idle_timeout_s=default_idle_timeout_s
    ):
        if label == "Status":
            grid.add_row(label, view.status_text(value))
        elif label == "Reason" and record.get("status") == "failed":
            grid.add_row(label, Text(value, style="red"))
        else:
            grid.add_row(label, value)
    return grid


def events_table(events: list[Record], *, now: datetime) -> Table:
    table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
    for name in ("AGE", "KIND", "DETAILS"):
        table.add_column(name, no_wrap=name != "DETAILS")
    for event in list(reversed(events))[:RECENT_EVENTS]:
        when = event_time(event)
        details = " ".join(
            f"{k}={v}" for k, v in event.items() if k not in ("id", "kind", "tenant_id")
        )
        table.add_row(
            "-" if when is None else view.human_duration(now - when),
            str(event.get("kind", "?")),
            details or "-",
        )
    return table


class DescribeScreen(LoadingScreen[TenantDetails]):
    BINDINGS = keymap("describe")
    DEFAULT_CSS = """
    DescribeScreen #describe-body { padding: 0 1; }
    DescribeScreen .section { text-style: bold; color: $accent; margin-top: 1; }
    """

    def __init__(self, state: DashboardState, tenant_id: str) -> None:
        super().__init__()
        self.state = state
        self.tenant_id = tenant_id
        self.details: TenantDetails | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="describe-body"):
            yield Static(Text(f"describe {self.tenant_id}", style="bold"), id="describe-title")
            yield Static("loading…", id="describe-record")
            yield Static("Buffer", classes="section")
            yield Static("", id="describe-buffer")
            yield Static("Model usage (24 h)", classes="section")
            yield Static("", id="describe-usage")
            yield Static(f"Recent events (newest first, up to {RECENT_EVENTS})", classes="section")
            yield Static("", id="describe-events")
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_reload()

    async def fetch(self) -> TenantDetails:
        return await self.state.source.describe(self.tenant_id)

    async def show_loaded(self, details: TenantDetails | None, error: str | None) -> None:
        app = self.state
        if details is None:
            self.query_one("#describe-record", Static).update(
                Text(f"cannot describe {self.tenant_id}: {error}", style="red")
            )
            return
        self.details = details
        now = app.clock()
        self.query_one("#describe-record", Static).update(
            record_table(
                details.record,
                now=now,
                default_idle_timeout_s=app.default_idle_timeout_s(),
                buffer=details.buffer,
            )
        )
        buffer = details.buffer
        self.query_one("#describe-buffer", Static).update(
            "unknown (this daemon does not report buffers)"
            if buffer is None
            else f"{buffer.pending} pending"
            + ("" if buffer.dead_letters is None else f", {buffer.dead_letters} dead letters")
        )
        self.query_one("#describe-usage", Static).update(usage_section(details.usage))
        self.query_one("#describe-events", Static).update(
            events_table(details.events, now=now) if details.events else Text("none", style="dim")
        )

    def action_logs(self) -> None:
        self.post_message(TenantActionRequested("logs", self.tenant_id))

    def action_audit(self) -> None:
        self.post_message(TenantActionRequested("audit", self.tenant_id))


def usage_section(usage: Record | None) -> str:
    """Requests, tokens and cost of the last 24 h, then one line per model."""
    if not usage:
        return "none"
    cost = usage.get("cost_usd")
    lines = [
        f"{usage.get('requests', 0)} requests, {usage.get('prompt_tokens', 0)} prompt + "
        f"{usage.get('completion_tokens', 0)} completion tokens"
        + ("" if cost is None else f", ${float(cost):.4f}")
    ]
    for model, entry in sorted((usage.get("models") or {}).items()):
        lines.append(
            f"  {model}: {entry.get('requests', 0)} requests, {entry.get('total_tokens', 0)} tokens"
        )
    return "\n".join(lines)


class LogsScreen(Screen[None]):
    BINDINGS = keymap("logs")
    DEFAULT_CSS = """
    LogsScreen #logs-title { padding: 0 1; background: $boost; }
    LogsScreen Log { height: 1fr; }
    """

    class LinesReceived(Message):
        pass

    class Ended(Message):
        def __init__(self, note: str, error: bool) -> None:
            super().__init__()
            self.note = note
            self.error = error

    def __init__(
        self, state: DashboardState, tenant_id: str, *, since_s: float | None = LOGS_SINCE_S
    ) -> None:
        super().__init__()
        self.state = state
        self.tenant_id = tenant_id
        self.since_s = since_s
        # The toggles (w, t, s) start as `kubectl logs -f` shows lines: unwrapped, stamped,
        # following the newest.
        self.wrap, self.timestamps, self.autoscroll = False, True, True
        self.raw: list[str] = []
        """Every line received (bounded), re-rendered when a toggle changes."""
        self._pending: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="logs-title")
        yield Log(id="logs", max_lines=LOG_MAX_LINES, auto_scroll=True)
        yield KeyBar()

    def _title(self) -> Text:
        since = "all" if self.since_s is None else f"{view.human_duration_s(self.since_s)} ago"

        def flag(name: str, on: bool) -> tuple[str, str]:
            return (f"  {name}:{'on' if on else 'off'}", "green" if on else "dim")

        return Text.assemble(
            ("logs ", "bold"),
            (self.tenant_id, "bold cyan"),
            f"  following across wakes, since {since}",
            flag("wrap", self.wrap),
            flag("timestamps", self.timestamps),
            flag("autoscroll", self.autoscroll),
        )

    @property
    def log_widget(self) -> Log:
        return self.query_one("#logs", Log)

    def on_mount(self) -> None:
        self._stream()

    def action_restart(self) -> None:
        self.log_widget.clear()
        self.raw.clear()
        self._pending.clear()
        self._stream()

    def action_flip(self, what: str) -> None:
        setattr(self, what, not getattr(self, what))
        self.log_widget.auto_scroll = self.autoscroll
        self.query_one("#logs-title", Static).update(self._title())
        if what != "autoscroll":
            self._rerender()

    def action_since(self, key: str) -> None:
        self.since_s = SINCE_CHOICES[key]
        self.query_one("#logs-title", Static).update(self._title())
        self.action_restart()

    def _shown(self, lines: list[str]) -> list[str]:
        width = self.log_widget.size.width - 2 if self.wrap else None
        return shown_lines(lines, timestamps=self.timestamps, wrap_width=width)

    def _rerender(self) -> None:
        self.log_widget.clear()
        self.log_widget.write_lines(self._shown(self.raw))

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def _stream(self) -> None:
        source = self.state.source
        try:
            async for line in source.logs(self.tenant_id, follow=True, since_s=self.since_s):
                # Lines pile up here and the handler takes them all: a burst costs one
                # message, not one per line.
                if not self._pending:
                    self.post_message(self.LinesReceived())
                self._pending.append(line)
        except SourceError as exc:
            self.post_message(self.Ended(f"— {exc} (ctrl+r to retry) —", True))
        else:
            self.post_message(self.Ended("— end of log stream (ctrl+r to reconnect) —", False))

    def on_logs_screen_lines_received(self, message: LinesReceived) -> None:
        lines, self._pending = self._pending, []
        self.raw.extend(lines)
        del self.raw[:-LOG_MAX_LINES]
        self.log_widget.write_lines(self._shown(lines))

    def on_logs_screen_ended(self, message: Ended) -> None:
        self.on_logs_screen_lines_received(self.LinesReceived())
        self.log_widget.write_line(message.note)
