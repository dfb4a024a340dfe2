"""`tenant list -w` and `logs -f` that survive a daemon restart.

A stream that ends (the daemon shut down, the connection dropped) is opened again —
through a fresh client, since a restarted local daemon may listen on another port
(daemon.json) — until Ctrl-C. What was printed is not printed again: the watch
remembers each tenant's last printed record, the log its last line's timestamp.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

import typer

from otm.client import ApiError, CliError, DaemonUnreachable

RETRY_S = 1.0
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ")

T = TypeVar("T")


def line_stamp(line: str) -> str | None:
    """The sortable ISO-8601 UTC stamp the local runtime puts on each log line."""
    match = _STAMP.match(line)
    return match.group(0) if match else None


def reconnecting(
    open_stream: Callable[[bool], Iterator[T]],
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    max_reconnects: int | None = None,
) -> Generator[T, None, None]:
    """Items of ``open_stream(reconnect)`` (``reconnect`` False the first time), opening
    it again whenever it ends or the daemon cannot be reached. API errors (404, 401...)
    are final. ``max_reconnects`` bounds the retries (tests)."""
    reconnects = 0
    announced = False
    while True:
        stream: Iterator[T] | None = None
        try:
            stream = open_stream(reconnects > 0)
            for item in stream:
                if announced:
                    typer.echo(f"otm: reconnected; {what} continues", err=True)
                    announced = False
                yield item
        except ApiError:
            raise
        except CliError as exc:
            if reconnects == 0 and isinstance(exc, DaemonUnreachable):
                raise  # never reached a daemon at all: say so, as without -f/-w
            if not announced:
                typer.echo(f"otm: {exc}; reconnecting (Ctrl-C to stop)", err=True)
                announced = True
        else:
            if not announced:
                typer.echo(
                    "otm: the daemon ended the stream; reconnecting (Ctrl-C to stop)", err=True
                )
                announced = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # the connection goes with the stream, even on Ctrl-C
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            raise CliError(f"gave up reconnecting after {max_reconnects} attempts")
        sleep(RETRY_S)
