"""Create (`n`) and edit (`e`) a tenant: name, bot token, labels, idle timeout, image.

Edit sends only what changed (PATCH); a bot token typed in the edit form rotates it
(blank keeps the current one). Input errors show under the form before anything is
sent; the daemon's own refusals come back as a red toast from the app.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from otm.output import format_duration, parse_duration
from otm.tui.forms import FormScreen
from otm.tui.keybar import KeyBar
from otm.tui.keymap import keymap
from otm.tui.messages import TenantFormSubmitted
from otm.tui.source import Record


def parse_labels_text(text: str) -> dict[str, str]:
    """``tier=gold, team=a`` → {"tier": "gold", "team": "a"} (ValueError if malformed)."""
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid label {part!r} (expected key=value)")
        labels[key.strip()] = value.strip()
    return labels


def form_body(record: Record | None, entered: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The create body (``record`` None) or the PATCH changes, or an input error."""
    body: dict[str, Any] = {}
    try:
        labels = parse_labels_text(entered.get("labels", ""))
    except ValueError as exc:
        return {}, str(exc)
    timeout_text = entered.get("idle_timeout", "").strip()
    timeout: int | None = None
    if timeout_text and timeout_text != "default":
        try:
            timeout = parse_duration(timeout_text)
        except ValueError as exc:
            return {}, f"idle timeout: {exc}"
    image = entered.get("image", "").strip() or None
    token = entered.get("bot_token", "").strip()
    if record is None:
        name = entered.get("name", "").strip()
        if not name:
            return {}, "a name is required"
        if not token:
            return {}, "a bot token is required (the tenant's Telegram bot)"
        body = {"tenant_id": name, "bot_token": token}
        if labels:
            body["labels"] = labels
        if timeout is not None:
            body["idle_timeout_s"] = timeout
        if image:
            body["image"] = image
        return body, None
    if token:
        body["bot_token"] = token  # rotation
    if labels != (record.get("labels") or {}):
        body["labels"] = labels
    if timeout != record.get("idle_timeout_s"):
        body["idle_timeout_s"] = timeout
    if image != (record.get("image") or None):
        body["image"] = image
    if not body:
        return {}, "nothing changed"
    return body, None


class TenantFormScreen(FormScreen):
    BINDINGS = keymap("form")
    DEFAULT_CSS = """
    TenantFormScreen #form-body { padding: 0 1; height: 1fr; }
    TenantFormScreen #form-title { text-style: bold; margin-bottom: 1; }
    TenantFormScreen Label { margin-top: 1; }
    TenantFormScreen #form-error { color: $error; padding: 0 1; height: auto; }
    TenantFormScreen #form-buttons { height: auto; padding: 0 1; }
    """

    def __init__(self, record: Record | None) -> None:
        super().__init__()
        self.record = record
        self.crumb = "new" if record is None else f"edit {record.get('tenant_id')}"

    def compose(self) -> ComposeResult:
        record = self.record or {}
        with VerticalScroll(id="form-body"):
            title = "New tenant" if self.record is None else f"Edit {record.get('tenant_id')}"
            yield Static(title, id="form-title")
            with Vertical():
                if self.record is None:
                    yield Label("Name (a DNS label)")
                    yield Input(id="name", placeholder="acme")
                yield Label(
                    "Bot token"
                    + ("" if self.record is None else " (blank keeps it; a new one rotates it)")
                )
                yield Input(id="bot_token", password=True, placeholder="123456:ABC…")
                yield Label("Labels (key=value, comma-separated)")
                labels = record.get("labels") or {}
                yield Input(",".join(f"{k}={v}" for k, v in sorted(labels.items())), id="labels")
                yield Label("Idle timeout (90s, 15m, 1h; blank or 'default': the live default)")
                timeout = record.get("idle_timeout_s")
                yield Input("" if timeout is None else format_duration(timeout), id="idle_timeout")
                yield Label("Image (blank: the default)")
                yield Input(str(record.get("image") or ""), id="image")
        yield Static("", id="form-error")
        with Horizontal(id="form-buttons"):  # outside the scroll: always reachable
            yield Button("Save", id="save", variant="primary")
            yield Button("Cancel", id="cancel")
        yield KeyBar()

    def entered(self) -> dict[str, str]:
        return {i.id or "": i.value for i in self.query(Input)}

    def action_save(self) -> None:
        body, error = form_body(self.record, self.entered())
        if error is not None:
            self.query_one("#form-error", Static).update(error)
            return
        tenant_id = str(body.get("tenant_id") or (self.record or {}).get("tenant_id"))
        # To the app directly: this screen is gone before its own queue would run.
        self.app.post_message(TenantFormSubmitted(tenant_id, body, create=self.record is None))
        self.app.pop_screen()
