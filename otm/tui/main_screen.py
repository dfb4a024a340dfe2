"""The tenant table (k9s's pod view): health panel on top, live table, `/` filter."""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from otm.tui import view
from otm.tui.health import connection_text, health_text
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap
from otm.tui.messages import (
    ConfigEditorRequested,
    ReconnectRequested,
    TenantActionRequested,
    TenantFormRequested,
)
from otm.tui.state import DashboardState

MUTATING_ACTIONS = frozenset({"wake", "sleep", "delete", "suspend", "create", "edit"})
# Below this height the health panel gives its rows to the table.
PANEL_MIN_HEIGHT = 16
# The table's border (left and right) and its vertical scrollbar.
TABLE_CHROME = 4


def tenant_command(action: str, parameters: tuple[object, ...]) -> str:
    """What a binding of the table does: ``tenant('wake')`` is ``wake``; another action, its
    name (``create``); MUTATING_ACTIONS and the help's greyed-out rows are in these terms."""
    return str(parameters[0]) if action == "tenant" and parameters else action


def _comparable(cell: str | Text) -> tuple[str, str]:
    return (cell.plain, str(cell.style)) if isinstance(cell, Text) else (cell, "")


class HealthPanel(Static):
    DEFAULT_CSS = """
    HealthPanel {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    """


class TenantsScreen(Screen[None]):
    """The base screen. Reads the app's state when the app says it changed."""

    BINDINGS = keymap("tenants")

    DEFAULT_CSS = """
    TenantsScreen #tenants {
        height: 1fr;
        border: round $primary;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
    }
    TenantsScreen #filter {
        dock: bottom;
        display: none;
        margin-bottom: 1;
    }
    TenantsScreen #filter.shown {
        display: block;
    }
    """

    def __init__(self, state: DashboardState) -> None:
        super().__init__()
        self.state = state
        self.query_text = ""
        self.sort_by = "name"
        self.sort_descending = False
        self._columns: list[view.Column] = []
        self._row_ids: list[str] = []
        self._row_cells: dict[str, list[tuple[str, str]]] = {}

    def compose(self) -> ComposeResult:
        yield HealthPanel(id="health")
        table: DataTable[str | Text] = DataTable(id="tenants", cursor_type="row")
        yield table
        yield Input(id="filter", placeholder="filter: name, status, or label k=v (enter: keep)")
        yield KeyBar()

    @property
    def table(self) -> DataTable[str | Text]:
        return cast("DataTable[str | Text]", self.query_one("#tenants", DataTable))

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self, event: events.Resize) -> None:
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    # -- rendering ---------------------------------------------------------------
    def refresh_view(self) -> None:
        self.refresh_health()
        self.refresh_table()

    def refresh_health(self) -> None:
        app = self.state
        panel = self.query_one(HealthPanel)
        panel.display = self.size.height >= PANEL_MIN_HEIGHT
        text = connection_text(app.connection, app.source.label)
        if app.readonly:
            text.append("  ")
            text.append(" READ-ONLY ", style="bold reverse yellow")
        text.append("\n")
        # The panel pads one cell on either side.
        text.append_text(health_text(app.status, app.status_error, width=self.size.width - 2))
        panel.update(text)

    def refresh_table(self) -> None:
        app = self.state
        table = self.table
        columns = view.columns_for_width(max(self.size.width - TABLE_CHROME, 0))
        if columns != self._columns:
            selected = self.selected_tenant()
            table.clear(columns=True)
            for column in columns:
                table.add_column(self._label(column), width=column.width, key=column.key)
            self._columns = columns
            self._row_ids = []
            self._row_cells = {}
            self._reselect(selected)
        rows = self._visible()
        now = app.clock()
        default_idle = app.default_idle_timeout_s()
        wanted = {
            str(t["tenant_id"]): view.row_cells(
                t,
                columns,
                now=now,
                default_idle_timeout_s=default_idle,
                buffered=app.buffered.get(str(t["tenant_id"])),
                usage=app.usage.get(str(t["tenant_id"])),
            )
            for t in rows
        }
        ids = list(wanted)
        if ids == self._row_ids:
            for tenant_id, cells in wanted.items():
                old = self._row_cells[tenant_id]
                for column, cell, before in zip(columns, cells, old, strict=True):
                    if _comparable(cell) != before:
                        table.update_cell(tenant_id, column.key, cell)
        else:
            selected = self.selected_tenant()
            table.clear()
            for tenant_id, cells in wanted.items():
                table.add_row(*cells, key=tenant_id)
            self._reselect(selected)
        self._row_ids = ids
        self._row_cells = {k: [_comparable(c) for c in v] for k, v in wanted.items()}
        scope = f"/{self.query_text}" if self.query_text else "all"
        table.border_title = f"tenants({scope})[{len(ids)}]" + self._sort_note()
        table.border_subtitle = "" if app.connection.state == "live" else "stale"

    def visible_ids(self) -> list[str]:
        """Tenant ids the filter lets through, in table order (from the app's state, which
        may be ahead of the table until the next render)."""
        return [str(t["tenant_id"]) for t in self._visible()]

    def _visible(self) -> list[dict[str, object]]:
        return view.visible_tenants(
            self.state.tenants,
            self.query_text,
            sort_by=self.sort_by,
            descending=self.sort_descending,
            buffered=self.state.buffered,
        )

    def _custom_sort(self) -> bool:
        return (self.sort_by, self.sort_descending) != ("name", False)

    def _sort_note(self) -> str:
        if not self._custom_sort():
            return ""
        return f" {'↓' if self.sort_descending else '↑'}{self.sort_by.upper()}"

    def _label(self, column: view.Column) -> str:
        if column.key != self.sort_by or not self._custom_sort():
            return column.label
        return column.label + ("↓" if self.sort_descending else "↑")

    def _reselect(self, tenant_id: str | None) -> None:
        if tenant_id is not None and tenant_id in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(tenant_id), animate=False)

    def selected_tenant(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    # -- actions -------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if tenant_command(action, parameters) in MUTATING_ACTIONS and self.state.readonly:
            return None  # shown, greyed out
        return True

    def _selected_or_warn(self) -> str | None:
        tenant_id = self.selected_tenant()
        if tenant_id is None:
            self.notify("no tenant selected", severity="warning")
        return tenant_id

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.value = self.query_text
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("shown")
        box.value = ""
        self.set_query("")
        self.table.focus()

    def set_query(self, query: str) -> None:
        self.query_text = query.strip()
        self.refresh_table()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.set_query(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#filter", Input).remove_class("shown")
        self.table.focus()

    @on(DataTable.RowSelected, "#tenants")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(TenantActionRequested("describe", event.row_key.value))

    def action_tenant(self, command: str) -> None:
        """describe, logs, wake, sleep, snapshots or delete the selected tenant (keys.toml)."""
        if (tenant_id := self._selected_or_warn()) is not None:
            self.post_message(TenantActionRequested(command, tenant_id))

    def action_suspend(self) -> None:
        if (tenant_id := self._selected_or_warn()) is not None:
            held = self.state.tenants.get(tenant_id, {}).get("status") == "suspended"
            self.post_message(TenantActionRequested("resume" if held else "suspend", tenant_id))

    def action_create(self) -> None:
        self.post_message(TenantFormRequested(None))

    def action_edit(self) -> None:
        if (tenant_id := self._selected_or_warn()) is not None:
            self.post_message(TenantFormRequested(tenant_id))

    def action_cursor(self, step: int) -> None:
        table = self.table
        if table.row_count:
            row = min(max(table.cursor_row + step, 0), table.row_count - 1)
            table.move_cursor(row=row, animate=False)

    def action_cursor_end(self, bottom: int) -> None:
        table = self.table
        if table.row_count:
            table.move_cursor(row=table.row_count - 1 if bottom else 0, animate=False)

    def action_sort(self, column: str) -> None:
        if column == self.sort_by:
            self.sort_descending = not self.sort_descending
        else:
            self.sort_by, self.sort_descending = column, False
        self._columns = []  # headers carry the arrow: rebuild them
        self.refresh_table()

    def action_config(self) -> None:
        self.post_message(ConfigEditorRequested())

    def action_refresh(self) -> None:
        self.post_message(ReconnectRequested())
