"""Every process of a local agent is found again, including a child that left the agent's
process group and session (as OpenClaw's spawn-broker does) and a child started with a
scrubbed environment inside the run dir: signalling the agent's process group alone
misses them, ending the run dir's processes does not."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.adapters.local.processes import (
    NONCE_ENV,
    DataDirLocked,
    end_run_dir_processes,
    lock_data_dir,
    marked_processes,
    write_instance_marker,
)
from tests.support.polling import eventually

# The agent: starts two grandchildren in sessions of their own, one with the agent's
# environment, one with an empty one (but working in the run dir), prints their pids.
AGENT = """
import os, subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
a = subprocess.Popen(sleeper, start_new_session=True)
b = subprocess.Popen(sleeper, start_new_session=True, env={}, cwd=os.getcwd())
print(a.pid, b.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def agent_tree(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str], list[int]]]:
    run_dir = tmp_path / "agents" / "t" / "t-abc"
    run_dir.mkdir(parents=True)
    nonce = "feedc0de"
    write_instance_marker(run_dir, nonce)
    env = {**os.environ, NONCE_ENV: nonce}
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT],
        cwd=run_dir,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert agent.stdout is not None
    children = [int(p) for p in agent.stdout.readline().split()]
    try:
        yield run_dir, nonce, agent, children
    finally:
        for pid in [agent.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        agent.wait()


async def test_a_group_kill_misses_children_in_their_own_session_the_marker_does_not(
    agent_tree: tuple[Path, str, subprocess.Popen[str], list[int]],
) -> None:
    run_dir, nonce, agent, children = agent_tree
    assert set(marked_processes(nonce, run_dir)) == {agent.pid, *children}
    os.killpg(agent.pid, signal.SIGKILL)  # what a forced stop used to do, and only that
    agent.wait()
    assert all(alive(pid) for pid in children)
    assert await end_run_dir_processes(run_dir, grace_s=5) == 2
    # Killed processes can still be tearing down (their environ already unreadable, so no
    # longer "marked", not yet zombies) for a moment under load.
    await eventually(lambda: not any(alive(pid) for pid in children), what="children gone")
    assert marked_processes(nonce, run_dir) == []


def test_the_data_dir_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    fd = lock_data_dir(tmp_path)
    try:
        # flock locks belong to the open file: a second open in this process conflicts too.
        with pytest.raises(DataDirLocked, match=f"pid {os.getpid()}.*{tmp_path}"):
            lock_data_dir(tmp_path)
    finally:
        os.close(fd)
    os.close(lock_data_dir(tmp_path))  # released with its holder
