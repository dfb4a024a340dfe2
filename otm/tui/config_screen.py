"""Live config editor (`c`): one field per key the daemon reports, errors inline under
the field they concern, Save sends only the changed keys (PATCH /v1/config)."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from otm.output import format_duration, parse_duration
from otm.tui.forms import FormScreen
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap
from otm.tui.loading import LoadingScreen
from otm.tui.messages import ConfigSaved
from otm.tui.source import SourceError
from otm.tui.state import DashboardState

KEY_HELP = {
    "warm_pool_target": "Pre-started agent pods kept ready so a wake skips the boot.",
    "default_idle_timeout_s": (
        "Time without activity (90s, 15m, 1h) before a running tenant is put to sleep "
        "(a tenant's own idle_timeout_s wins)."
    ),
    "max_wake_attempts": "Failed wakes in a row before a tenant is marked failed.",
}


def changed_values(
    current: dict[str, Any], entered: dict[str, str]
) -> tuple[dict[str, int], dict[str, str]]:
    """The keys whose entered value differs from ``current``, and per-key input errors."""
    changes: dict[str, int] = {}
    errors: dict[str, str] = {}
    for key, raw in entered.items():
        text = raw.strip()
        try:
            # *_s keys take durations (15m, 1h30m) as the CLI does; a bare number is seconds.
            value = parse_duration(text) if key.endswith("_s") else int(text)
        except ValueError:
            errors[key] = (
                f"{key} must be a duration (90s, 15m, 1h) or seconds"
                if key.endswith("_s")
                else f"{key} must be an integer"
            )
            continue
        if value != current.get(key):
            changes[key] = value
    return changes, errors


def error_field(message: str, keys: list[str]) -> str | None:
    """The config key a daemon error names (longest match first), if any."""
    for key in sorted(keys, key=len, reverse=True):
        if key in message:
            return key
    return None


class ConfigScreen(LoadingScreen[dict[str, Any]], FormScreen):
    BINDINGS = keymap("config")
    DEFAULT_CSS = """
    ConfigScreen #config-body { padding: 0 1; height: 1fr; }
    ConfigScreen #config-error { padding: 0 1; height: auto; }
    ConfigScreen #config-title { margin-bottom: 1; text-style: bold; }
    ConfigScreen #config-fields { height: auto; }
    ConfigScreen .field { height: auto; margin-bottom: 1; }
    ConfigScreen .field Label { text-style: bold; }
    ConfigScreen .field Input { width: 30; }
    ConfigScreen .hint { color: $text-muted; }
    ConfigScreen .error { color: $error; text-style: bold; }
    ConfigScreen #config-buttons { height: auto; padding: 0 1; }
    ConfigScreen #config-buttons Button { margin-right: 2; }
    """

    class Saved(Message):
        def __init__(self, changes: dict[str, int], config: dict[str, Any]) -> None:
            super().__init__()
            self.changes = changes
            self.config = config

    class SaveFailed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, state: DashboardState) -> None:
        super().__init__()
        self.state = state
        self.config: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        readonly = self.state.readonly
        with VerticalScroll(id="config-body"):
            title = "Live config (shared by all daemon replicas)"
            yield Static(title + ("  [read-only]" if readonly else ""), id="config-title")
            yield Vertical(Static("loading…"), id="config-fields")
        # Outside the scroll: Save stays on screen however small the terminal is.
        yield Static("", id="config-error", classes="error")
        with Horizontal(id="config-buttons"):
            yield Button("Save", id="save", variant="primary", disabled=True)
            yield Button("Cancel", id="cancel")
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save" and (self.state.readonly or self.config is None):
            return None
        return True

    async def fetch(self) -> dict[str, Any]:
        return await self.state.source.get_config()

    async def show_loaded(self, config: dict[str, Any] | None, error: str | None) -> None:
        fields = self.query_one("#config-fields", Vertical)
        await fields.remove_children()
        self.config = config
        self.show_error(None, error)
        if config is None:
            return
        readonly = self.state.readonly
        for key, value in config.items():
            await fields.mount(
                Vertical(
                    Label(key),
                    Input(
                        format_duration(value) if key.endswith("_s") else str(value),
                        id=f"input-{key}",
                        # Durations (15m) for *_s keys, as in the CLI; counts stay integers.
                        type="text" if key.endswith("_s") else "integer",
                        disabled=readonly,
                    ),
                    Static(KEY_HELP.get(key, ""), classes="hint"),
                    Static("", id=f"error-{key}", classes="error"),
                    classes="field",
                )
            )
        self.query_one("#save", Button).disabled = readonly
        self.refresh_bindings()
        if not readonly:
            self.query(Input).first().focus()

    def show_error(self, key: str | None, message: str | None) -> None:
        """One error at a time: under its field when it names one, else below the form."""
        for widget in self.query(".error"):
            if isinstance(widget, Static):
                widget.update("")
        if message:
            target = f"#error-{key}" if key else "#config-error"
            self.query_one(target, Static).update(message)

    def entered(self) -> dict[str, str]:
        assert self.config is not None
        return {key: self.query_one(f"#input-{key}", Input).value for key in self.config}

    def action_save(self) -> None:
        if self.config is None or self.state.readonly:
            return
        changes, errors = changed_values(self.config, self.entered())
        if errors:
            key, message = next(iter(errors.items()))
            self.show_error(key, message)
            return
        if not changes:
            self.show_error(None, "nothing changed")
            return
        self.show_error(None, None)
        self._save(changes)

    @work(exclusive=True, group="config-save", exit_on_error=False)
    async def _save(self, changes: dict[str, int]) -> None:
        try:
            config = await self.state.source.set_config(changes)
        except SourceError as exc:
            self.post_message(self.SaveFailed(str(exc)))
        else:
            self.post_message(self.Saved(changes, config))

    def on_config_screen_saved(self, message: Saved) -> None:
        # To the app directly: this screen's own queue closes with the dismiss.
        self.app.post_message(ConfigSaved(message.changes, message.config))
        self.dismiss()

    def on_config_screen_save_failed(self, message: SaveFailed) -> None:
        keys = list(self.config or {})
        self.show_error(error_field(message.error, keys), message.error)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()
