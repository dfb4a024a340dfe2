"""Screens that edit something behind Save and Cancel buttons (the live config, a tenant)."""

from __future__ import annotations

from textual import on
from textual.screen import Screen
from textual.widgets import Button


class FormScreen(Screen[None]):
    """Its ``#save`` button runs `action_save`; ``#cancel`` leaves without saving."""

    def action_save(self) -> None:
        raise NotImplementedError

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.app.pop_screen()
