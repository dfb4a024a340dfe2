"""Ending a child process: a signal, a bounded wait, SIGKILL if it hangs."""

from __future__ import annotations

import asyncio
import contextlib
import signal


async def end_process(
    proc: asyncio.subprocess.Process,
    *,
    grace_s: float,
    sig: signal.Signals | None = signal.SIGTERM,
) -> None:
    """Send ``sig`` unless the process has exited, wait up to ``grace_s``, then SIGKILL.

    ``sig=None`` sends nothing: the caller asked it to end some other way (closed its stdin).
    Returns once the process is reaped.
    """
    if sig is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # exited, not reaped yet
            proc.send_signal(sig)
    try:
        async with asyncio.timeout(grace_s):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
