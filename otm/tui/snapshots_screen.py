"""The snapshots of one tenant (`h` on the tenant table): its state history, newest first,
and `r` to restore the highlighted snapshot (asks first; refused in read-only mode).

A restore puts the tenant to sleep, makes the snapshot its state and wakes it (the daemon
does it all: POST /v1/tenants/{id}/restore); the screen then lists the history again."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from otm.output import human_size
from otm.tui import view
from otm.tui.dialogs import ConfirmScreen
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap
from otm.tui.loading import LoadingScreen
from otm.tui.messages import ActionFinished
from otm.tui.source import Record, SourceError
from otm.tui.state import DashboardState

COLUMNS = ("TAKEN", "AGE", "TRIGGER", "SIZE", "KEY")


class SnapshotsScreen(LoadingScreen[list[Record]]):
    BINDINGS = keymap("snapshots")
    DEFAULT_CSS = """
    SnapshotsScreen #snapshots { height: 1fr; }
    SnapshotsScreen #snapshots-note { padding: 0 1; }
    """

    def __init__(self, state: DashboardState, tenant_id: str) -> None:
        super().__init__()
        self.state = state
        self.tenant_id = tenant_id
        self.items: list[Record] = []

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#snapshots", DataTable)

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="snapshots-note")
        table: DataTable[str] = DataTable(id="snapshots", cursor_type="row")
        table.border_title = f"snapshots({self.tenant_id})"
        yield table
        yield KeyBar()

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self.action_reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restore" and (self.state.readonly or not self.items):
            return None
        return True

    async def fetch(self) -> list[Record]:
        return await self.state.source.snapshots(self.tenant_id)

    async def show_loaded(self, items: list[Record] | None, error: str | None) -> None:
        note = self.query_one("#snapshots-note", Static)
        table = self.table
        table.clear()
        if items is None:
            self.items = []
            note.update(Text(f"cannot list snapshots: {error}", style="red"))
            return
        self.items = items
        now = self.state.clock()
        for item in self.items:
            taken = view.parse_time(item.get("taken_at"))
            table.add_row(
                str(item.get("taken_at", "")),
                "-" if taken is None else view.human_duration(now - taken),
                str(item.get("trigger", "")),
                human_size(int(item.get("size", 0))),
                str(item["key"]),
                key=str(item["key"]),
            )
        table.border_title = f"snapshots({self.tenant_id})[{len(self.items)}]"
        note.update(
            f"{self.tenant_id}: state history, newest first"
            if self.items
            else Text(f"no snapshots of {self.tenant_id} yet (one is taken on every sleep)")
        )
        self.refresh_bindings()

    def highlighted(self) -> Record | None:
        table = self.table
        if not self.items or not 0 <= table.cursor_row < len(self.items):
            return None
        return self.items[table.cursor_row]

    def action_restore(self) -> None:
        chosen = self.highlighted()
        if chosen is None or self.state.readonly:
            return
        key = str(chosen["key"])

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.notify(f"restoring {self.tenant_id} (sleep, restore, wake)…", timeout=3)
                self._restore(key)

        question = (
            f"Restore tenant {self.tenant_id} to the snapshot taken "
            f"{chosen.get('taken_at')}?\n\nIts agent is put to sleep (its current state is "
            "kept in the history), then woken on that snapshot."
        )
        self.app.push_screen(ConfirmScreen(question, yes_label="Yes, restore"), answered)

    @work(exclusive=True, group="snapshot-restore", exit_on_error=False)
    async def _restore(self, key: str) -> None:
        try:
            result = await self.state.source.restore(self.tenant_id, key)
        except SourceError as exc:
            self.app.post_message(
                ActionFinished(f"restore {self.tenant_id}: {exc}", severity="error")
            )
            return
        self.app.post_message(
            ActionFinished(f"{self.tenant_id} restored to {key}", record=result.get("tenant"))
        )
        self._load()
