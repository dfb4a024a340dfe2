"""A deadline that moves on at every use and rarely fires: one timer, moved only when it fires.

An ``asyncio.timeout`` (or a fresh ``call_later``) per use leaves one cancelled timer in
the event loop's heap per use, and the loop's periodic clean-up of thousands of them
stalled it for milliseconds (an agent POST per update: 1-sender p99 +7 ms; a delivery
worker's idle wait per update at 1,000 live tenants). Here ``arm`` only moves the
deadline; the one timer, when it fires early, re-schedules itself for the deadline as it
stands then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LazyDeadline:
    def __init__(self, on_expiry: Callable[[], None]) -> None:
        self._on_expiry = on_expiry
        self._deadline = 0.0
        self._armed = False
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, after_s: float) -> None:
        """``on_expiry`` runs ``after_s`` from now unless ``disarm`` comes first."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + after_s
        self._armed = True
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check)

    def disarm(self) -> None:
        """Nothing runs at the deadline (the timer stays until it fires or ``stop``)."""
        self._armed = False

    def stop(self) -> None:
        """Disarm and drop the timer (its owner is done for good)."""
        self._armed = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if not self._armed:
            return  # idle: the next arm schedules it again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            self._armed = False
            self._on_expiry()
        else:
            self._timer = loop.call_at(self._deadline, self._check)
