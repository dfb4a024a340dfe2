"""The audit log (`:audit`, or `a` in describe for one tenant): who changed what, newest
first, as `otm audit` shows it (time, actor, source, tenant, action, outcome, changes)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from otm.output import AUDIT_HEADERS, audit_row
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap
from otm.tui.loading import LoadingScreen
from otm.tui.source import Record
from otm.tui.state import DashboardState

AUDIT_SHOWN = 200


def audit_table(entries: list[Record]) -> Table:
    """Newest first; failed actions in red."""
    table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
    for name in AUDIT_HEADERS:
        table.add_column(name, no_wrap=name != "CHANGES")
    for entry in reversed(entries):
        style = "" if entry.get("outcome") == "ok" else "red"
        table.add_row(*audit_row(entry), style=style)
    return table


class AuditScreen(LoadingScreen[list[Record]]):
    BINDINGS = keymap("audit")
    DEFAULT_CSS = """
    AuditScreen #audit-body { padding: 0 1; }
    """

    def __init__(self, state: DashboardState, tenant_id: str | None = None) -> None:
        super().__init__()
        self.state = state
        self.tenant_id = tenant_id
        self.entries: list[Record] | None = None

    def compose(self) -> ComposeResult:
        scope = f"tenant {self.tenant_id}" if self.tenant_id else "all tenants"
        title = f"audit log: {scope} (newest first, up to {AUDIT_SHOWN}; secrets shown as ***)"
        with VerticalScroll(id="audit-body"):
            yield Static(Text(title, style="bold"), id="audit-title")
            yield Static("loading…", id="audit-entries")
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_reload()

    async def fetch(self) -> list[Record]:
        return await self.state.source.audit(self.tenant_id, limit=AUDIT_SHOWN)

    async def show_loaded(self, entries: list[Record] | None, error: str | None) -> None:
        shown = self.query_one("#audit-entries", Static)
        if entries is None:
            shown.update(Text(f"cannot read the audit log: {error}", style="red"))
            return
        self.entries = entries
        shown.update(audit_table(entries) if entries else Text("no entries", style="dim"))
