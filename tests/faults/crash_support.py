"""Helpers of the crash-at-every-step tests: a daemon that SIGKILLs itself at a named step
(daemon/crash_points.py), and the census of agent processes left on a data dir."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from daemon.crash_points import CRASH_ENV
from tests.e2e.harness import Daemon

WAKE_STEPS = ("wake-run-dir", "wake-restored", "wake-spawned", "wake-ready")
SLEEP_STEPS = ("sleep-before-save", "sleep-saved")


def crash_env(step: str) -> dict[str, str]:
    return {CRASH_ENV: step}


async def wait_crashed(daemon: Daemon, timeout: float = 60.0) -> None:
    """Until the daemon killed itself at its crash step (then forget the process)."""
    proc = daemon.proc
    assert proc is not None
    async with asyncio.timeout(timeout):
        code = await proc.wait()
    assert code == -signal.SIGKILL, f"daemon exited with {code}, not at its crash step"
    await daemon.kill()  # closes its client session and log


async def stop_gracefully(daemon: Daemon, timeout: float = 60.0) -> None:
    """SIGTERM and wait, without the harness's own cleanup of leftover agents (that
    cleanup would hide a leak the daemon itself left)."""
    proc = daemon.proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(timeout):
        code = await proc.wait()
    assert code == 0, daemon.log_tail()


def agent_processes(data_dir: Path) -> list[int]:
    """Live processes started for an agent of this data dir: the agent, and every child
    it spawned (found by the agent's HOME, which all of them inherit, or their cwd)."""
    agents = str(data_dir / "agents")
    home = f"HOME={agents}/".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd.startswith(agents) or any(v.startswith(home) for v in environ):
            found.append(int(entry))
    return found


def kill_processes(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
