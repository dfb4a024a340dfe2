"""The key hint line at the bottom of every screen (k9s shows its keys in the header)."""

from __future__ import annotations

import contextlib

from rich.text import Text
from textual.dom import NoScreen
from textual.screen import Screen
from textual.widgets import Static

KEY_STYLE = "bold dark_orange"
CRUMB_STYLE = "bold reverse cyan"
ALWAYS_FIRST = ("help", "command", "quit")
"""Shown before any other key, so a narrow terminal never cuts them (k9s's ?, :, q)."""


def crumb(screen: Screen[object]) -> str | None:
    """The breadcrumb of one screen (k9s shows where you are: <tenants> <describe acme>)."""
    own = getattr(screen, "crumb", None)
    if isinstance(own, str):
        return own
    tenant_id = getattr(screen, "tenant_id", None)
    name = type(screen).__name__.removesuffix("Screen").lower()
    if name in ("tenants", "config", "health", "help"):
        return name
    if isinstance(tenant_id, str):
        return f"{name} {tenant_id}"
    return None  # modal prompts and dialogs are not places


class KeyBar(Static):
    """``key Description`` for each shown binding of the active screen; disabled ones dim.

    A single Static re-rendered when the bindings change: Textual's Footer remounts one
    widget per key on every focus change, which costs more than rendering the table."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.show_keys)

    def on_unmount(self) -> None:
        with contextlib.suppress(NoScreen):
            self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self.show_keys)

    def show_keys(self) -> None:
        if not self.is_attached:
            return  # the screen went away before this ran
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for place in filter(None, map(crumb, self.app.screen_stack)):
            text.append(f"<{place}>", style=CRUMB_STYLE)
            text.append(" ")
        seen: set[str] = set()
        actives = list(self.screen.active_bindings.values())
        # ?, : and q first: on a narrow terminal the line is cut, and `?` lists the rest.
        actives.sort(
            key=lambda active: (
                ALWAYS_FIRST.index(active.binding.action)
                if active.binding.action in ALWAYS_FIRST
                else len(ALWAYS_FIRST)
            )
        )
        for active in actives:
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            if text and not text.plain.endswith(" "):
                text.append("  ")
            dim = "" if active.enabled else " dim strike"
            text.append(self.app.get_key_display(binding), style=KEY_STYLE + dim)
            text.append(" ")
            text.append(binding.description, style=dim.strip())
        self.update(text)
