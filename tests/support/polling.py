"""The one polling helper of the test suite: wait until a condition holds, bounded.

The bound is a failure limit, never a speed assertion (speed targets live in bench/).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], Awaitable[object] | object],
    timeout: float = 5.0,
    what: str = "",
    *,
    interval: float = 0.02,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Re-check ``predicate`` (sync or async) every ``interval`` until it is truthy;
    AssertionError after ``timeout`` seconds. ``pause`` lets a Textual test pass
    ``pilot.pause`` so the app runs between checks."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await pause(interval)
