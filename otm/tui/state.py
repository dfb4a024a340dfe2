"""What the screens read from the dashboard. The app implements it and hands itself to
each screen it opens; screens change nothing through it: they post messages
(otm/tui/messages.py) that the app handles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from otm.tui.health import Connection
from otm.tui.source import Record, TenantSource


class DashboardState(Protocol):
    source: TenantSource
    readonly: bool
    tenants: dict[str, Record]
    buffered: dict[str, int | None]
    status: Record | None
    status_error: str | None
    connection: Connection
    clock: Callable[[], datetime]

    def default_idle_timeout_s(self) -> int | None: ...
