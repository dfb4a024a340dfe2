"""State shared by the stand-in agent's two listeners and its lifecycle."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from otm.devtools.agent_stub.config import AgentSettings
from otm.devtools.agent_stub.store import AgentStore
from otm.devtools.agent_stub.turns import TurnEngine, turn_from_update

logger = logging.getLogger(__name__)


class TelegramState(enum.Enum):
    DISABLED = "disabled"
    """No webhook configured: nothing to wait for."""
    STARTING = "starting"
    READY = "ready"
    """getMe worked, the listener is bound and setWebhook succeeded."""
    FAILED = "failed"


@dataclass
class AgentRuntime:
    settings: AgentSettings
    store: AgentStore
    engine: TurnEngine
    telegram: TelegramState
    draining: bool = False
    webhook_runner: web.AppRunner | None = None
    _submitted: set[int] = field(default_factory=set)
    _backlog: set[int] = field(default_factory=set)
    _dispatching: bool = False

    @property
    def admitting(self) -> bool:
        """New turns start only once Telegram is ready and never during a drain."""
        return self.telegram is TelegramState.READY and not self.draining

    def failing_checks(self) -> list[str]:
        if self.draining:
            return ["gateway-draining"]
        if self.telegram in (TelegramState.STARTING, TelegramState.FAILED):
            return ["telegram"]
        return []

    @property
    def pending_turns(self) -> int:
        """Turns queued or running, plus accepted updates waiting for admission."""
        return self.engine.pending + len(self._backlog)

    async def on_update_accepted(self, update_id: int, body: dict[str, Any]) -> None:
        if self.admitting and not self._dispatching:
            await self._submit(update_id, body)
        else:
            # Stays in the durable spool; processed when admission opens (or after a restart),
            # or by the spool pass running now, behind the updates that arrived before it.
            self._backlog.add(update_id)

    async def dispatch_spooled(self) -> None:
        """Submit every spooled, unprocessed update in arrival order (at start of admission).

        Until a pass finds nothing new, updates accepted meanwhile are left to it: one whose
        webhook call ends just as admission opens must not overtake the spooled ones."""
        self._dispatching = True
        try:
            while self.admitting:
                pending = await self.store.pending_updates()
                spooled = [s for s in pending if s.update_id not in self._submitted]
                if not spooled:
                    return
                for update in spooled:
                    if self.admitting:
                        await self._submit(update.update_id, update.body)
        finally:
            self._dispatching = False

    async def _submit(self, update_id: int, body: dict[str, Any]) -> None:
        # An update can be both just accepted and listed as pending while admission opens.
        if update_id in self._submitted:
            return
        self._submitted.add(update_id)
        self._backlog.discard(update_id)
        turn = turn_from_update(update_id, body)
        if turn is None:
            await self.store.mark_done(update_id)
        else:
            self.engine.submit(turn)


RUNTIME_KEY = web.AppKey("agent_runtime", AgentRuntime)
