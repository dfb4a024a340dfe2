"""The embedded default's private redis-server SIGKILLed under a real daemon: the daemon
restarts it on the same port and AOF (webhooks work again, buffered updates survive);
one that cannot be restarted makes the daemon exit non-zero instead of idling half-alive."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

from daemon.embedded_redis import EmbeddedRedis, supervise
from otm.devtools.fake_telegram import FakeTelegram
from tests.faults.support import TelegramSender, echoes
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

REPLY_TIMEOUT = 45.0


def private_redis_pid(daemon_pid: int) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat.split("(", 1)[1].rsplit(") ", 1)
        if comm.startswith("redis-server") and int(rest.split()[1]) == daemon_pid:
            return int(entry)
    raise AssertionError("the daemon has no private redis-server")


async def test_sigkilled_private_redis_is_restarted_and_webhooks_work_again(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon(OTM_REDIS_URL="")  # empty: the embedded default
    assert daemon.proc is not None
    secret = await daemon.create_tenant("phoenix", "88:phoenix")
    async with TelegramSender(lambda: daemon) as sender:
        await sender.send("phoenix", secret, 1, 4, "before")

        async def answered(text: str) -> bool:
            return any(t.startswith(f"echo: {text} ") for t in echoes(telegram, "88:phoenix", 4))

        await eventually(lambda: answered("before"), REPLY_TIMEOUT, "the first answer")
        first = private_redis_pid(daemon.proc.pid)
        os.kill(first, signal.SIGKILL)
        # Telegram retries whatever is refused meanwhile; it must get a 200 again.
        await sender.send("phoenix", secret, 2, 4, "after", timeout=REPLY_TIMEOUT)
        await eventually(lambda: answered("after"), REPLY_TIMEOUT, "an answer after the kill")
    assert private_redis_pid(daemon.proc.pid) != first
    status, body = await daemon.api("GET", "/readyz")
    assert status == 200, body
    assert daemon.proc.returncode is None


async def test_a_redis_that_cannot_be_restarted_is_fatal(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", durable=False)
    await server.astart()
    fatal: list[str] = []
    supervisor = asyncio.create_task(supervise(server, fatal.append, backoff_s=(0.01, 0.01)))
    try:
        server.binary = "no-such-redis-server-binary"  # every restart attempt fails
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await supervisor
    finally:
        supervisor.cancel()
        await server.astop()
    assert fatal == ["private redis-server could not be restarted (2 attempts)"]


async def test_a_stopped_redis_is_not_restarted(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", durable=False)
    await server.astart()
    fatal: list[str] = []
    supervisor = asyncio.create_task(supervise(server, fatal.append))
    await asyncio.sleep(0)
    await server.astop()
    async with asyncio.timeout(10):
        await supervisor
    assert server.process is None and fatal == []


async def test_daemon_exits_non_zero_when_its_redis_cannot_come_back(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """The redis-server "binary" is a script that starts the real one once, then fails."""
    real = shutil.which("redis-server")
    assert real is not None
    flag = tmp_path / "started-once"
    wrapper = tmp_path / "redis-once"
    wrapper.write_text(f'#!/bin/sh\n[ -e {flag} ] && exit 1\ntouch {flag}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    daemon = await start_daemon(OTM_REDIS_URL="", OTM_REDIS_SERVER_BINARY=str(wrapper))
    proc = daemon.proc
    assert proc is not None
    os.kill(private_redis_pid(proc.pid), signal.SIGKILL)
    async with asyncio.timeout(60):
        code = await proc.wait()
    assert code == 1
    assert "private redis-server could not be restarted" in daemon.log_tail()
