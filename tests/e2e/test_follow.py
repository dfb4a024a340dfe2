"""`otm logs -f` and `otm tenant list -w` as long-running commands: they wait for a
tenant's first boot, follow it across sleep and wake, survive a daemon restart without
printing anything twice, and never hold the daemon's shutdown up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import ADMIN_TOKEN, Daemon
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually
from tests.support.processes import end_process
from tests.support.servers import project_env, python_cmd

LINE_TIMEOUT_S = 60.0


class OtmProcess:
    """A long-running `otm` command whose stdout lines the test reads as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.stderr = ""
        """Set once the command ended."""

    async def line_containing(self, text: str) -> str:
        """Read lines until one contains ``text`` (bounded); all lines are kept."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(LINE_TIMEOUT_S):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    stderr = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"otm exited: {self.lines} {stderr.decode()}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if text in line:
                    return line


@contextlib.asynccontextmanager
async def otm(daemon: Daemon, telegram: FakeTelegram, *args: str) -> AsyncIterator[OtmProcess]:
    env = project_env(
        OTM_DATA_DIR=str(daemon.data_dir),
        OTM_ADMIN_TOKEN=ADMIN_TOKEN,
        OTM_TELEGRAM_API_BASE=telegram.base_url,
    )
    proc = await asyncio.create_subprocess_exec(
        *python_cmd("-m", "otm", *args),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    process = OtmProcess(proc)
    try:
        yield process
    finally:
        await end_process(proc, grace_s=10, sig=signal.SIGINT)
        if proc.stderr is not None:
            process.stderr = (await proc.stderr.read()).decode()


async def _chat(daemon: Daemon, telegram: FakeTelegram, tenant: str, text: str) -> None:
    async with otm(daemon, telegram, "chat", tenant, text, "--timeout", "60") as chat:
        await chat.line_containing("echo: ")


async def _watchers(daemon: Daemon) -> int:
    status, body = await daemon.api("GET", "/v1/status")
    assert status == 200, body
    return int(body["daemon"]["watchers"])


async def test_logs_follow_waits_for_the_first_boot_and_spans_sleep_and_wake(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    await daemon.create_tenant("fol", "1801:fol")
    async with otm(daemon, telegram, "logs", "fol", "-f") as logs:
        await asyncio.sleep(0)  # before any boot: it waits instead of failing
        await _chat(daemon, telegram, "fol", "one")
        first = await logs.line_containing("[otm] starting")
        status, body = await daemon.api("POST", "/v1/tenants/fol/sleep")
        assert status == 200, body
        await logs.line_containing("[otm] stopping")
        await _chat(daemon, telegram, "fol", "two")
        second = await logs.line_containing("[otm] starting")
    assert first != second
    assert len(logs.lines) == len(set(logs.lines)), "a line was printed twice"
    # One stream from the daemon across both runs (not the CLI reconnecting).
    assert "reconnecting" not in logs.stderr


async def test_logs_follow_survives_a_daemon_restart(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon()
    await daemon.create_tenant("restart", "1802:restart")
    await _chat(daemon, telegram, "restart", "one")
    async with otm(daemon, telegram, "logs", "restart", "-f") as logs:
        await logs.line_containing("[otm] starting")
        await daemon.stop()
        daemon = await start_daemon()
        await _chat(daemon, telegram, "restart", "two")
        # The new daemon's boot of the tenant, and the first run's stop, each once.
        await logs.line_containing("[otm] starting")
    assert len(logs.lines) == len(set(logs.lines)), "a line was printed twice"
    assert sum("[otm] starting" in line for line in logs.lines) == 2


async def test_watch_survives_a_daemon_restart_without_duplicate_rows(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon()
    await daemon.create_tenant("early", "1803:early")
    async with otm(daemon, telegram, "tenant", "list", "-w", "-o", "name") as watch:
        await watch.line_containing("tenant/early")
        await daemon.stop()
        daemon = await start_daemon()
        await daemon.create_tenant("late", "1804:late")
        await watch.line_containing("tenant/late")
    # `early` did not change across the restart: printed once, not again with the resync.
    assert watch.lines.count("tenant/early") == 1


@pytest.mark.parametrize("stream", ["logs", "watch"])
async def test_open_streams_do_not_hold_the_daemon_shutdown(
    start_daemon: DaemonFactory, telegram: FakeTelegram, stream: str
) -> None:
    daemon = await start_daemon()
    await daemon.create_tenant("open", "1805:open")
    await _chat(daemon, telegram, "open", "one")
    args = ("logs", "open", "-f") if stream == "logs" else ("tenant", "list", "-w")
    async with otm(daemon, telegram, *args) as follower:
        await follower.line_containing("open")
        if stream == "watch":
            await eventually(lambda: _watchers(daemon), 15, "a watcher")
        proc = daemon.proc
        assert proc is not None
        # Daemon.stop SIGKILLs a daemon that has not exited after the timeout.
        await daemon.stop(timeout=20)
        assert proc.returncode == 0


async def test_logs_previous_and_container_on_the_local_runtime(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    await daemon.create_tenant("prev", "1806:prev")
    none_yet = await _run(daemon, telegram, "logs", "prev", "--previous")
    assert none_yet.returncode == 1 and "no previous run" in none_yet.stderr
    await _chat(daemon, telegram, "prev", "one")
    status, body = await daemon.api("POST", "/v1/tenants/prev/sleep")
    assert status == 200, body
    await _chat(daemon, telegram, "prev", "two")
    current = await _run(daemon, telegram, "logs", "prev")
    previous = await _run(daemon, telegram, "logs", "prev", "-p")
    assert previous.returncode == 0, previous.stderr
    starts = [line for line in current.stdout.splitlines() if "[otm] starting" in line]
    assert len(starts) == 2
    assert starts[0] in previous.stdout and starts[1] not in previous.stdout
    assert "[otm] stopping" in previous.stdout
    wrong = await _run(daemon, telegram, "logs", "prev", "-c", "sync")
    assert wrong.returncode == 2 and "only -c gateway" in wrong.stderr


async def _run(daemon: Daemon, telegram: FakeTelegram, *args: str) -> Any:
    env = project_env(
        OTM_DATA_DIR=str(daemon.data_dir),
        OTM_ADMIN_TOKEN=ADMIN_TOKEN,
        OTM_TELEGRAM_API_BASE=telegram.base_url,
    )
    return await asyncio.to_thread(
        subprocess.run,
        python_cmd("-m", "otm", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
