"""Every process a local agent starts, found again by any later daemon.

Each agent is started with a per-instance marker in its environment
(``OTM_AGENT_NONCE=<random>``), written to ``{run_dir}/agent.instance`` *before* the spawn.
Children inherit the environment, including those that leave the agent's process group
and session (OpenClaw's spawn-broker calls setsid), so scanning ``/proc/*/environ`` for
the marker finds the whole tree (plus any process working inside the run dir, for a
child started with a scrubbed environment): a forced stop, and the next daemon after a crash at any
step (even between the spawn and the pid file), end every one of them. Works without
cgroups or privileges; Linux only (elsewhere the scan finds nothing and the process group
is what is signalled).

Also the data-directory lock: one daemon with local agents (or a private Redis) per data
directory, since a second one would see neither the first one's agents nor its Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)

NONCE_ENV = "OTM_AGENT_NONCE"
INSTANCE_FILE = "agent.instance"
LOCK_FILE = "daemon.lock"
POLL_S = 0.05


class DataDirLocked(RuntimeError):
    """Another daemon already runs on this data directory."""


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive flock on ``{data_dir}/daemon.lock`` (fd returned, held until closed or
    the process dies, so a SIGKILLed daemon never blocks its successor)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        raise DataDirLocked(
            f"another otm daemon{holder} already runs on data directory {data_dir}; "
            "stop it first, or give this one its own OTM_DATA_DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def write_instance_marker(run_dir: Path, nonce: str) -> None:
    """Record the marker before the spawn: a crash right after it still leaves the way to
    find the processes."""
    path = run_dir / INSTANCE_FILE
    with open(path, "w") as fh:
        fh.write(nonce + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_instance_marker(run_dir: Path) -> str | None:
    try:
        return (run_dir / INSTANCE_FILE).read_text().strip() or None
    except OSError:
        return None


def marked_processes(nonce: str, run_dir: Path | None = None) -> list[int]:
    """Live processes (not zombies) carrying the marker, or with their working directory
    in ``run_dir``."""
    needle = f"{NONCE_ENV}={nonce}".encode()
    inside = None if run_dir is None else str(run_dir)
    own = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
            cwd = os.readlink(f"/proc/{entry}/cwd") if inside is not None else ""
            cwd = cwd.removesuffix(" (deleted)")
        except OSError:
            continue  # gone, or not ours to read
        if (
            needle in environ.split(b"\0")
            or (inside is not None and (cwd == inside or cwd.startswith(inside + "/")))
        ) and not _zombie(entry):
            found.append(int(entry))
    return found


def _zombie(pid: str) -> bool:
    """Exited, not yet reaped (its parent, maybe a dead daemon, never will): gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return True


def signal_marked(nonce: str, sig: signal.Signals, run_dir: Path | None = None) -> int:
    """Signal every process carrying the marker; how many were signalled."""
    count = 0
    for pid in marked_processes(nonce, run_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            count += 1
    return count


async def end_marked(nonce: str, grace_s: float, run_dir: Path | None = None) -> int:
    """SIGTERM every marked process, SIGKILL what is left after ``grace_s``; returns how
    many processes were found. Bounded: gives up after the SIGKILL round's wait."""
    pids = await asyncio.to_thread(marked_processes, nonce, run_dir)
    if not pids:
        return 0
    await asyncio.to_thread(signal_marked, nonce, signal.SIGTERM, run_dir)
    loop = asyncio.get_running_loop()
    for sig, wait_s in ((signal.SIGKILL, grace_s), (signal.SIGKILL, 5.0)):
        # Not our children (no exit notification): a bounded poll.
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            if not await asyncio.to_thread(marked_processes, nonce, run_dir):
                break
            await asyncio.sleep(POLL_S)
        if not await asyncio.to_thread(signal_marked, nonce, sig, run_dir):
            break
    left = await asyncio.to_thread(marked_processes, nonce, run_dir)
    if left:
        log.error("agent processes %s survived SIGKILL", left)
    return len(pids)


async def end_run_dir_processes(run_dir: Path, grace_s: float) -> int:
    """End every process of the agent instance that ran in ``run_dir``."""
    nonce = await asyncio.to_thread(read_instance_marker, run_dir)
    if nonce is None:
        return 0
    ended = await end_marked(nonce, grace_s, run_dir)
    if ended:
        log.warning("ended %d leftover process(es) of agent %s", ended, run_dir.name)
    return ended
