"""The open watches of an in-memory fake (a runtime, a tenant source): one queue per watch,
and every event published to all of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Fanout(Generic[T]):
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[T]] = []

    def __len__(self) -> int:
        """How many watches are open."""
        return len(self._queues)

    def publish(self, item: T) -> None:
        for queue in self._queues:
            queue.put_nowait(item)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[T]]:
        """One watch's queue, open for the ``with`` block."""
        queue: asyncio.Queue[T] = asyncio.Queue()
        self._queues.append(queue)
        try:
            yield queue
        finally:
            self._queues.remove(queue)
