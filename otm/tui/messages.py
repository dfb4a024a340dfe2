"""Messages posted to the app: past-tense ones from workers (workers fetch, handlers own
state), and the requests screens make (screens never call the app's methods)."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.notifications import SeverityLevel

from otm.tui.source import Record, WatchEvent


class WatchEventReceived(Message):
    def __init__(self, event: WatchEvent) -> None:
        super().__init__()
        self.event = event


class WatchConnected(Message):
    """The first event of a (re)connected watch arrived."""


class WatchDisconnected(Message):
    def __init__(self, reason: str, attempt: int, retry_in_s: float) -> None:
        super().__init__()
        self.reason = reason
        self.attempt = attempt
        self.retry_in_s = retry_in_s


class StatusFetched(Message):
    def __init__(self, status: Record | None, error: str | None) -> None:
        super().__init__()
        self.status = status
        self.error = error

    def can_replace(self, message: Message) -> bool:
        # Only the newest status matters when several queue up on a busy loop.
        return isinstance(message, StatusFetched)


class BufferCountsFetched(Message):
    def __init__(self, counts: dict[str, int | None], usage: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.counts = counts
        self.usage = usage
        """Model usage per tenant (None: not fetched this round)."""


class ActionFinished(Message):
    """A wake/sleep/delete/config change ended; ``record`` is the tenant it returned."""

    def __init__(
        self,
        text: str,
        *,
        severity: SeverityLevel = "information",
        record: Record | None = None,
        deleted: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.text = text
        self.severity: SeverityLevel = severity
        self.record = record
        self.deleted = deleted
        self.config = config


class TenantActionRequested(Message):
    """A screen asked for ``action`` (describe, logs, wake, sleep, delete) on a tenant."""

    def __init__(self, action: str, tenant_id: str) -> None:
        super().__init__()
        self.action = action
        self.tenant_id = tenant_id


class TenantFormRequested(Message):
    """A screen asked for the create form (``tenant_id`` None) or the edit form."""

    def __init__(self, tenant_id: str | None) -> None:
        super().__init__()
        self.tenant_id = tenant_id


class TenantFormSubmitted(Message):
    """The create/edit form was submitted: ``body`` is the API request body."""

    def __init__(self, tenant_id: str, body: dict[str, Any], *, create: bool) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.body = body
        self.create = create


class ConfigEditorRequested(Message):
    """A screen asked for the live config editor."""


class ReconnectRequested(Message):
    """A screen asked to drop the watch and reconnect now."""


class ConfigSaved(Message):
    """The config editor saved ``changes``; ``config`` is the daemon's answer."""

    def __init__(self, changes: dict[str, int], config: dict[str, Any]) -> None:
        super().__init__()
        self.changes = changes
        self.config = config
