"""Child processes of the tests: started with their output in a log file; ended with a
signal, a bounded wait, SIGKILL if they hang."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path


async def spawn_logged(
    *argv: str, log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> asyncio.subprocess.Process:
    """Start ``argv`` in a session of its own (its process group can be killed whole), stdin
    closed, stdout and stderr appended to ``log_path``: the log of earlier runs stays."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)


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
