"""Per-tenant agent log files for the local runtime: timestamped, rotated, followable.

The agent's stdout/stderr goes through a pipe to the daemon, which prefixes
each line with an ISO-8601 UTC timestamp (so ``since_s`` works) and appends it
to ``{agents_dir}/{id}/agent.log``. Followers get new lines pushed to them as
they are written, no file polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

MAX_LOG_BYTES = 10 * 1024 * 1024
"""A log file is rotated to ``agent.log.1`` beyond this size (one generation kept)."""

_END = None


def stamp(line: str, now: datetime | None = None) -> str:
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{at} {line.rstrip()}"


def line_time(line: str) -> datetime | None:
    try:
        return datetime.strptime(line[:27], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


class LogSink:
    """One tenant's log: file writer plus live followers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self.offset = path.stat().st_size if path.exists() else 0
        self._followers: set[asyncio.Queue[tuple[int, str] | None]] = set()

    def write(self, line: str) -> None:
        text = stamp(line)
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        if self.offset > MAX_LOG_BYTES:
            self._rotate()
            assert self._fh is not None
        self._fh.write(text + "\n")
        self._fh.flush()
        self.offset += len((text + "\n").encode())
        for queue in self._followers:
            queue.put_nowait((self.offset, text))

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self.offset = 0

    def end_of_run(self) -> None:
        """The agent exited: followers finish."""
        for queue in self._followers:
            queue.put_nowait(_END)

    def close(self) -> None:
        self.end_of_run()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def lines(
        self, *, follow: bool, since_s: float | None, running: bool
    ) -> AsyncIterator[str]:
        """History (optionally only the last ``since_s`` seconds), then live lines."""
        cutoff = datetime.now(UTC) - timedelta(seconds=since_s) if since_s is not None else None
        queue: asyncio.Queue[tuple[int, str] | None] | None = None
        if follow and running:
            queue = asyncio.Queue()
            self._followers.add(queue)
        try:
            read_up_to = self.offset
            for line in _read_history(self.path, read_up_to):
                if cutoff is None or (at := line_time(line)) is None or at >= cutoff:
                    yield line
            if queue is None:
                return
            while (item := await queue.get()) is not _END:
                assert item is not None
                offset, line = item
                if offset > read_up_to:  # not already part of the history read
                    yield line
        finally:
            if queue is not None:
                self._followers.discard(queue)


RUN_START = "[otm] starting "


def previous_run(lines: list[str]) -> list[str]:
    """The lines of the run before the latest one (KeyError if there was none)."""
    starts = [i for i, line in enumerate(lines) if RUN_START in line]
    if len(starts) < 2:
        raise KeyError("no previous run")
    return lines[starts[-2] : starts[-1]]


def _read_history(path: Path, limit: int) -> list[str]:
    lines: list[str] = []
    rotated = path.with_name(path.name + ".1")
    with contextlib.suppress(FileNotFoundError):
        lines += rotated.read_text(encoding="utf-8", errors="replace").splitlines()
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
        lines += fh.read(limit).decode("utf-8", errors="replace").splitlines()
    return lines
