"""Small screens: delete confirmation, the `:` command line, help and health."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static

from otm.output import DocFormat, render_status
from otm.tui.commands import COMMANDS, CommandSuggester
from otm.tui.health import status_rows
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap


class ConfirmScreen(ModalScreen[bool]):
    """Yes/No for destructive actions. "No" comes first and has the focus, so a stray
    Enter never deletes anything."""

    BINDINGS = keymap("confirm")
    AUTO_FOCUS = "#no"
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen #dialog {
        grid-size: 2;
        grid-gutter: 1 2;
        grid-rows: auto 3;
        padding: 1 2;
        width: 60;
        max-width: 95%;
        height: auto;
        border: thick $error;
        background: $surface;
    }
    ConfirmScreen #question { column-span: 2; width: 1fr; }
    ConfirmScreen Button { width: 100%; }
    """

    def __init__(self, question: str, *, yes_label: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Grid(id="dialog"):
            yield Label(self.question, id="question")
            yield Button("No", id="no", variant="primary")
            yield Button(self.yes_label, id="yes", variant="error")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class CommandPrompt(ModalScreen[str | None]):
    """k9s's `:` line at the bottom; the app runs what it returns."""

    BINDINGS = keymap("command")
    DEFAULT_CSS = """
    CommandPrompt { align: left bottom; background: transparent; }
    CommandPrompt #command { dock: bottom; border: tall $accent; margin-bottom: 1; }
    """

    def __init__(self, tenant_ids: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._tenant_ids = tenant_ids

    def compose(self) -> ComposeResult:
        names = ", ".join(spec.name for spec in COMMANDS)
        yield Input(
            id="command",
            placeholder=f":{names} (tab completes)",
            suggester=CommandSuggester(self._tenant_ids),
        )

    @on(Input.Submitted, "#command")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class HelpRow:
    key: str
    description: str
    tooltip: str
    disabled: bool = False


class HelpScreen(Screen[None]):
    BINDINGS = keymap("help")
    DEFAULT_CSS = """
    HelpScreen #help-body { padding: 0 1; }
    """

    def __init__(self, sections: list[tuple[str, list[HelpRow]]], *, readonly: bool) -> None:
        super().__init__()
        self.sections = sections
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            title = Text("otm tui: keys and commands", style="bold")
            if self.readonly:
                title.append("   read-only: greyed keys are disabled", style="yellow")
            yield Static(title)
            for index, (name, rows) in enumerate(self.sections):
                yield Static(
                    self._bindings_table(name, rows), id=f"help-{index}", classes="help-section"
                )
            yield Static(self._commands_table(), id="help-commands", classes="help-section")
        yield KeyBar()

    @staticmethod
    def _help_table(title: str) -> Table:
        """Key (or command), what it does, the detail: one section of the help screen."""
        table = Table(
            title=title,
            title_justify="left",
            title_style="bold cyan",
            box=None,
            padding=(0, 1),
            show_header=False,
        )
        table.add_column(style="bold", no_wrap=True, min_width=8)
        table.add_column(no_wrap=True, min_width=12)
        table.add_column(style="dim")
        return table

    @classmethod
    def _bindings_table(cls, name: str, rows: list[HelpRow]) -> Table:
        table = cls._help_table(name)
        for row in rows:
            style = "dim strike" if row.disabled else ""
            note = " (read-only)" if row.disabled else ""
            table.add_row(
                Text(row.key, style=style), Text(row.description + note, style=style), row.tooltip
            )
        return table

    @classmethod
    def _commands_table(cls) -> Table:
        table = cls._help_table("Commands (after :)")
        for spec in COMMANDS:
            usage = spec.name + (" NAME" if spec.takes_tenant else "")
            aliases = ", ".join(spec.aliases)
            table.add_row(usage, spec.help, f"aliases: {aliases}" if aliases else "")
        return table


class HealthScreen(Screen[None]):
    """Every field of GET /v1/status; refreshed by the app whenever a new status arrives."""

    BINDINGS = keymap("health")
    DEFAULT_CSS = """
    HealthScreen #health-body { padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="health-body"):
            yield Static(Text("daemon health (as `otm status`)", style="bold"))
            yield Static("waiting for the daemon…", id="health-detail")
        yield KeyBar()

    def show(self, status: Mapping[str, Any] | None, error: str | None) -> None:
        detail = self.query_one("#health-detail", Static)
        if status is None:
            detail.update(Text(error or "waiting for the daemon…", style="red" if error else ""))
            return
        # The same summary as `otm status` first, then every field for the curious.
        summary = Text(render_status(status, DocFormat.table))
        summary.highlight_words(["FAILING"], style="bold red")
        summary.highlight_words([" ok "], style="green")
        table = Table(box=None, padding=(0, 2), show_header=False, title_justify="left")
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, value in status_rows(status):
            table.add_row(key, value)
        if error:
            table.add_row(Text("last error", style="red"), Text(error, style="red"))
        detail.update(Group(summary, Text(""), Text("All fields", style="bold"), table))
