"""tests/support/processes.end_process: a child that ignores the signal is killed and reaped."""

from __future__ import annotations

import asyncio
import sys

from tests.support.processes import end_process

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


async def test_a_child_ignoring_the_signal_is_killed_and_reaped() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", IGNORES_SIGTERM, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"ready\n"  # its handler is in place
    await end_process(proc, grace_s=0.2)
    assert proc.returncode == -9  # reaped: no zombie left behind
