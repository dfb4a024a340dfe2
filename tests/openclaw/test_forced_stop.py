"""A real OpenClaw gateway stopped the hard way leaves no process behind.

OpenClaw's spawn-broker runs in its own session and process group (``detached: true``), so
signalling the gateway's process group misses it. The local runtime finds every process of
an agent by the instance marker in its environment (daemon/adapters/local/processes.py):
1. a forced stop (the grace period runs out: SIGKILL) ends the whole tree;
2. a daemon SIGKILLed with a gateway running: the next daemon ends the whole tree at start-up.

Needs ``.tools/openclaw``; two gateway boots (30-65 s each on a 2-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.harness import Daemon, end_orphan_agents
from tests.faults.crash_support import agent_processes, kill_processes
from tests.support.openclaw import (
    BOOT_TIMEOUT_S,
    openclaw_tier_marks,
    real_gateway_env,
)
from tests.support.servers import telegram_and_llm

pytestmark = openclaw_tier_marks()

TENANT = "ocks"
BOT_TOKEN = "5252:fake-openclaw-kill-token"


def _session_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[3])


@contextlib.contextmanager
def _output_pipes_held(pids: list[int]) -> Iterator[None]:
    """Hold a second read end on the agent processes' output pipes (and drain it).

    A local agent's stdout/stderr is a pipe to the daemon. Once the daemon is SIGKILLed,
    OpenClaw's next log line gets EPIPE and it exits on its own (its stream error handler
    calls process.exit on EPIPE), so whether the orphans are still running when the next
    daemon starts depends on whether the gateway logged in between: under load it often
    did. A pod's output goes to the container runtime, which outlives the daemon; holding
    the pipe here gives the local orphans the same footing, so the next daemon always
    meets a live tree to end."""
    loop = asyncio.get_running_loop()
    fds: list[int] = []
    seen: set[str] = set()

    def drain(fd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            if not os.read(fd, 1 << 16):  # every writer gone
                loop.remove_reader(fd)

    try:
        for pid in pids:
            for stream in (1, 2):
                path = f"/proc/{pid}/fd/{stream}"
                try:
                    target = os.readlink(path)
                    if not target.startswith("pipe:") or target in seen:
                        continue
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                seen.add(target)
                fds.append(fd)
                loop.add_reader(fd, drain, fd)
        assert fds, "no agent output pipe found"
        yield
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


async def _wake(daemon: Daemon) -> set[int]:
    """Wake the tenant; the sessions its processes run in (the gateway's and the broker's)."""
    status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/wake?wait=true")
    assert status == 200, f"{body}\n{daemon.log_tail()}"
    pids = agent_processes(daemon.data_dir)
    assert pids, "no agent process found"
    sessions = set()
    for pid in pids:
        try:
            sessions.add(_session_of(pid))
        except OSError:
            continue
    return sessions


async def test_forced_stop_and_daemon_crash_leave_no_gateway_process(
    own_redis: str, data_dir: Path
) -> None:
    async with telegram_and_llm() as (telegram, llm):
        # A stop grace far shorter than a gateway's drain: every stop ends in SIGKILL.
        env = real_gateway_env(llm.base_url, BOOT_TIMEOUT_S, stop_grace_s=0.2)
        # Unsandboxed: under bubblewrap (--die-with-parent, own PID namespace) a daemon's
        # death ends the agent's whole tree by itself, leaving nothing to adopt; without it
        # the orphans live on and the next daemon must end them, which is what this proves.
        env["OTM_AGENT_SANDBOX"] = "none"
        daemon = Daemon(data_dir, own_redis, telegram, **env)
        restarted = Daemon(data_dir, own_redis, telegram, **env)
        try:
            await daemon.start()
            await daemon.create_tenant(TENANT, BOT_TOKEN)

            # 1. A forced stop.
            sessions = await _wake(daemon)
            print(f"\ngateway processes run in {len(sessions)} sessions")
            assert len(sessions) >= 2, "the spawn-broker's own session was not exercised"
            status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
            assert status == 200, body
            left = agent_processes(data_dir)
            kill_processes(left)
            assert left == [], "processes left after a forced stop"

            # 2. The daemon dies with a gateway running; the next one ends its processes.
            await _wake(daemon)
            with _output_pipes_held(agent_processes(data_dir)):
                await daemon.kill()
                assert agent_processes(data_dir), "the orphaned gateway was already gone"
                await restarted.start()
                left = agent_processes(data_dir)
            kill_processes(left)
            assert left == [], "processes left after the next daemon started"
        finally:
            await daemon.stop(timeout=60)
            await restarted.stop(timeout=60)
            end_orphan_agents(data_dir)
            kill_processes(agent_processes(data_dir))
