"""A local agent's state dir: restored completely or never saved.

The snapshot is unpacked into ``{run_dir}/state.restoring`` and renamed to
``{run_dir}/state`` only when complete; then ``{run_dir}/.otm-restored`` records the
generation it came from. A save needs that marker (a run dir whose restore was cut short,
e.g. by a daemon SIGKILL, is discarded, never saved over the good snapshot) and replaces
the snapshot only while it is still that generation (``save_snapshot_over``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from daemon.adapters.state_keys import StaleSnapshot
from daemon.crash_points import crash_point
from daemon.ports import SnapshotInfo, StateStore

log = logging.getLogger(__name__)

RESTORED_MARKER = ".otm-restored"
STAGING_DIR = "state.restoring"
REGENERABLE_STATE = ("cache", "tmp", "warm-workspace", "agents/warm")
"""State subdirs never saved: OpenClaw's 54 MB Control UI cache, rebuilt on every start, and
its per-process temp/lock files (the pod sync sidecar excludes the same); and what a bound
warm gateway kept of its throw-away agent (local_warm_pool.py), so a bound gateway leaves
the same snapshot layout as a cold one."""


async def restore_run_state(store: StateStore, tenant_id: str, run_dir: Path) -> str:
    """Restore the latest snapshot into ``run_dir/state``; its generation."""
    staging = run_dir / STAGING_DIR
    generation = await store.restore_generation(tenant_id, staging)
    crash_point("wake-restored")
    await asyncio.to_thread(_commit, run_dir, staging, generation)
    return generation


def _commit(run_dir: Path, staging: Path, generation: str) -> None:
    staging.rename(run_dir / "state")
    mark_restored(run_dir, generation)


def mark_restored(run_dir: Path, generation: str) -> None:
    """Record (durably) that ``run_dir/state`` now holds snapshot ``generation`` completely:
    from here on a save may replace that snapshot."""
    tmp = run_dir / (RESTORED_MARKER + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(generation + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.rename(run_dir / RESTORED_MARKER)
    dir_fd = os.open(run_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def restored_generation(run_dir: Path) -> str | None:
    """The snapshot generation the run dir was restored from; None if never fully restored."""
    try:
        return (run_dir / RESTORED_MARKER).read_text().strip() or None
    except OSError:
        return None


async def snapshot_running_state(
    store: StateStore, tenant_id: str, run_dir: Path
) -> SnapshotInfo | None:
    """A history snapshot of a running agent's state (the latest snapshot is untouched, so
    the run's own final save still replaces the one it started from); None when the run dir
    was never fully restored or the store keeps no history."""
    if await asyncio.to_thread(restored_generation, run_dir) is None:
        return None
    return await store.record_snapshot(
        tenant_id, run_dir / "state", trigger="periodic", exclude=REGENERABLE_STATE
    )


async def save_run_state(store: StateStore, tenant_id: str, run_dir: Path) -> int | None:
    """Save the run's state over the snapshot it started from; bytes stored, or None when
    there is nothing that may be saved (never restored, or the snapshot moved on).
    Store errors propagate: the caller keeps the run dir until a save succeeds."""
    generation = await asyncio.to_thread(restored_generation, run_dir)
    if generation is None:
        log.warning(
            "not saving %s of %s: its state was never fully restored", run_dir.name, tenant_id
        )
        return None
    state = run_dir / "state"
    if not state.is_dir():
        return None
    for name in REGENERABLE_STATE:
        await asyncio.to_thread(shutil.rmtree, state / name, True)
    crash_point("sleep-before-save")
    try:
        size = await store.save_snapshot_over(tenant_id, state, generation)
    except StaleSnapshot as exc:
        # Already saved by an earlier daemon that died before removing the dir.
        log.warning("not saving %s: %s", run_dir.name, exc)
        return None
    crash_point("sleep-saved")
    log.info("state of %s saved (%d bytes)", tenant_id, size)
    return size
