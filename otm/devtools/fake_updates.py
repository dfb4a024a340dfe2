"""``getUpdates`` for the fake Bot API, with Telegram's semantics (core.telegram.org/bots/api).

- Updates wait in a per-bot queue, oldest first, until *confirmed*: a ``getUpdates`` with an
  ``offset`` higher than an update's ``update_id`` drops it (and everything before it). A
  negative ``offset`` keeps only the last ``-offset`` updates. Without an offset the earliest
  unconfirmed update comes first, again and again until confirmed.
- ``limit`` 1-100 (default 100); anything else is refused (Telegram clamps; the fake is
  stricter, so a client sending nonsense notices). ``timeout`` is the long poll in seconds
  (default 0, a short poll), bounded by ``MAX_POLL_TIMEOUT_S``.
- ``allowed_updates`` (a list, or its JSON text) changes which update types the bot is sent
  from then on: it does not filter updates already queued, as on Telegram. Empty list or never
  set: every type except ``chat_member``, ``message_reaction`` and ``message_reaction_count``.
- 409 ``Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to
  delete the webhook first`` while a webhook is set.
- 409 ``Conflict: terminated by other getUpdates request; make sure that only one bot instance
  is running``: the answer a waiting long poll gets when another ``getUpdates`` of the same
  bot arrives (two consumers of one bot).
- 409 ``Conflict: terminated by setWebhook request``: the answer a waiting long poll gets when
  a webhook is set meanwhile.

Tests put updates in with :meth:`UpdateQueues.inject` (in-process) or ``POST /_fake/updates``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_POLL_TIMEOUT_S = 50.0
"""Longest long poll the fake holds (Telegram's own cap is in this range)."""
MAX_LIMIT = 100
DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
"""Update types a bot gets only when it asks for them by name in ``allowed_updates``."""

WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
TERMINATED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
TERMINATED_BY_WEBHOOK = "Conflict: terminated by setWebhook request"


class GetUpdatesError(Exception):
    """An error answer: ``status`` is the HTTP status and ``error_code``."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def update_type(update: Mapping[str, Any]) -> str | None:
    """The update's kind: its one field besides ``update_id``."""
    kinds = [key for key in update if key != "update_id"]
    return kinds[0] if len(kinds) == 1 else None


@dataclass
class _Poll:
    """One waiting ``getUpdates``; a newer one of the same bot (or a setWebhook) ends it."""

    terminated_by: str | None = None
    """The 409 description it is answered with once terminated."""


@dataclass
class _BotQueue:
    updates: list[dict[str, Any]] = field(default_factory=list)
    last_id: int = 0
    allowed: frozenset[str] | None = None
    """None: the default set (all but DEFAULT_EXCLUDED)."""
    poll: _Poll | None = None
    terminated: int = 0
    """Long polls ended by a newer one (two consumers of one bot)."""

    def accepts(self, kind: str | None) -> bool:
        if kind is None:
            return False
        if self.allowed is None:
            return kind not in DEFAULT_EXCLUDED
        return kind in self.allowed


def _int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise GetUpdatesError(400, f"Bad Request: invalid {name} specified")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise GetUpdatesError(400, f"Bad Request: invalid {name} specified") from None


def _allowed_param(raw: Any) -> list[str] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise GetUpdatesError(400, "Bad Request: can't parse allowed updates") from None
    if not isinstance(raw, list) or not all(isinstance(kind, str) for kind in raw):
        raise GetUpdatesError(400, "Bad Request: can't parse allowed updates")
    return list(raw)


class UpdateQueues:
    """Every bot's update queue and its current long poll."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._bots: dict[str, _BotQueue] = {}
        self._notify = notify

    def _bot(self, token: str) -> _BotQueue:
        return self._bots.setdefault(token, _BotQueue())

    def inject(self, token: str, update: Mapping[str, Any]) -> int | None:
        """Queue an update for a bot as Telegram would; returns its ``update_id``, or None when
        the bot's ``allowed_updates`` exclude its type (Telegram never stores those). An update
        without an id gets the next one; ids must increase, as Telegram's do."""
        bot = self._bot(token)
        body = dict(update)
        update_id = body.setdefault("update_id", bot.last_id + 1)
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            raise ValueError("update_id must be an integer")
        if update_id <= bot.last_id:
            raise ValueError(f"update_id {update_id} is not above the last one ({bot.last_id})")
        bot.last_id = update_id
        if not bot.accepts(update_type(body)):
            return None
        bot.updates.append(body)
        self._notify()
        return update_id

    def pending(self, token: str) -> list[dict[str, Any]]:
        """Updates not yet confirmed, oldest first."""
        bot = self._bots.get(token)
        return list(bot.updates) if bot else []

    def terminated(self, token: str) -> int:
        """How many of the bot's long polls another ``getUpdates`` terminated (409)."""
        bot = self._bots.get(token)
        return bot.terminated if bot else 0

    def clear(self) -> None:
        for bot in self._bots.values():
            if bot.poll is not None:
                bot.poll.terminated_by = TERMINATED
        self._bots.clear()
        self._notify()

    def webhook_set(self, token: str) -> None:
        """A webhook was set: a waiting long poll of the bot ends with 409."""
        bot = self._bots.get(token)
        if bot is not None and bot.poll is not None:
            bot.poll.terminated_by = TERMINATED_BY_WEBHOOK
            bot.poll = None
            self._notify()

    def begin(
        self, token: str, params: Mapping[str, Any], *, webhook_set: bool
    ) -> tuple[_Poll, int, float]:
        """Validate a ``getUpdates``, apply its offset and allowed_updates, and register it as
        the bot's one long poll (terminating an older one). Returns (poll, limit, timeout)."""
        if webhook_set:
            raise GetUpdatesError(409, WEBHOOK_ACTIVE)
        offset = _int_param(params, "offset", 0)
        limit = _int_param(params, "limit", MAX_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise GetUpdatesError(400, f"Bad Request: limit must be between 1 and {MAX_LIMIT}")
        timeout = _int_param(params, "timeout", 0)
        if timeout < 0:
            raise GetUpdatesError(400, "Bad Request: timeout must be non-negative")
        allowed = _allowed_param(params.get("allowed_updates"))
        bot = self._bot(token)
        if allowed is not None:
            bot.allowed = frozenset(allowed) if allowed else None
        if offset > 0:
            bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        elif offset < 0:
            bot.updates = bot.updates[offset:]
        if bot.poll is not None:
            bot.poll.terminated_by = TERMINATED
            bot.terminated += 1
        poll = _Poll()
        bot.poll = poll
        self._notify()
        return poll, limit, min(float(timeout), MAX_POLL_TIMEOUT_S)

    def ready(self, token: str, poll: _Poll) -> bool:
        """Whether a waiting poll should answer now (updates queued, or terminated)."""
        return poll.terminated_by is not None or bool(self._bot(token).updates)

    def finish(self, token: str, poll: _Poll, limit: int) -> list[dict[str, Any]]:
        """The answer of a poll that stopped waiting; GetUpdatesError(409) if terminated."""
        bot = self._bot(token)
        if bot.poll is poll:
            bot.poll = None
        if poll.terminated_by is not None:
            raise GetUpdatesError(409, poll.terminated_by)
        return [dict(u) for u in bot.updates[:limit]]
