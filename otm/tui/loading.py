"""Screens that show what one read from the source returns (describe, audit, snapshots,
config): read on `reload` in a worker (a newer read cancels an older one), the answer or the
source's error handed back as a message, so that it is shown from the screen's own queue."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from textual import work
from textual.message import Message
from textual.screen import Screen

from otm.tui.source import SourceError

T = TypeVar("T")


class LoadingScreen(Screen[None], Generic[T]):
    class Loaded(Message):
        def __init__(self, value: Any, error: str | None) -> None:
            super().__init__()
            self.value = value
            self.error = error

    async def fetch(self) -> T:
        """The read this screen shows (SourceError: shown as the error)."""
        raise NotImplementedError

    async def show_loaded(self, value: T | None, error: str | None) -> None:
        """Show what `fetch` returned, or (``value`` None) why it failed."""
        raise NotImplementedError

    def action_reload(self) -> None:
        self._load()

    @work(exclusive=True, group="load", exit_on_error=False)
    async def _load(self) -> None:
        try:
            value = await self.fetch()
        except SourceError as exc:
            self.post_message(self.Loaded(None, str(exc)))
        else:
            self.post_message(self.Loaded(value, None))

    async def on_loading_screen_loaded(self, message: Loaded) -> None:
        await self.show_loaded(message.value, message.error)
