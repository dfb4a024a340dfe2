"""Named background tasks whose failures are logged, never swallowed silently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


def log_if_failed(task: asyncio.Task[Any], on_failure: Callable[[], object]) -> None:
    """A done-callback's body: log a task that raised (not one cancelled), by its name, and
    call ``on_failure`` (a metric)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
        on_failure()


async def repeat_forever(step: Callable[[], Awaitable[object]], every_s: float, what: str) -> None:
    """Run ``step`` every ``every_s`` seconds for good (a safety-net sweep); a failed step is
    logged as a warning and the next one runs on schedule."""
    while True:
        try:
            await step()
        except Exception as exc:
            log.warning("%s failed: %s", what, exc)
        await asyncio.sleep(every_s)


class TaskGroup:
    """Owns a set of named tasks; logs any that end unexpectedly; cancels all on close."""

    def __init__(self, on_failure: Any = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_failure = on_failure

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str, expect_forever: bool = False
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, expect_forever))
        return task

    def _done(self, task: asyncio.Task[Any], expect_forever: bool) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)
            if self._on_failure is not None:
                self._on_failure(task.get_name())
        elif expect_forever:
            log.error("background task %s has finished unexpectedly", task.get_name())

    @property
    def names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    async def close(self, timeout: float = 10.0) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(tasks, timeout=timeout)
