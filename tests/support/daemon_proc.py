"""A real daemon subprocess for CLI tests: started, read for its ready line, stopped."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import project_env, python_cmd, running_redis

READY_RE = re.compile(r"otm daemon ready admin=(\S+) router=(\S+)")


@dataclass
class DaemonProc:
    process: subprocess.Popen[str]
    admin_url: str
    router_url: str
    data_dir: Path
    log_path: Path

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (SIGKILL if it does not exit in time); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def daemon_env(data_dir: Path, **extra: str) -> dict[str, str]:
    # The agent-facing listener (model gateway, Bot API relay) on a free port unless asked.
    defaults = {"OTM_MODEL_GATEWAY_PORT": "0"}
    # The audit tests ask for another OTM_LOG_LEVEL (the access log is at INFO).
    defaults = {"OTM_LOG_LEVEL": "WARNING", **defaults}
    return project_env(OTM_DATA_DIR=str(data_dir), **{**defaults, **extra})


@contextmanager
def running_daemon(
    data_dir: Path,
    *,
    args: tuple[str, ...] = ("-m", "daemon"),
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[DaemonProc]:
    """Start ``python <args>`` and yield once it printed its ready line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-daemon.log"
    run_env = (
        dict(env)
        if env is not None
        else daemon_env(data_dir, OTM_ADMIN_PORT="0", OTM_ROUTER_PORT="0")
    )
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            python_cmd(*args), env=run_env, stdout=subprocess.PIPE, stderr=log, text=True
        )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True)
    reader.start()
    proc = None
    try:
        try:
            line = lines.get(timeout=ready_timeout)
        except queue.Empty:
            line = ""
        match = READY_RE.search(line)
        if match is None:
            process.kill()
            process.wait(10)
            raise RuntimeError(
                f"daemon did not become ready (exit {process.returncode}): "
                + log_path.read_text()[-2000:]
            )
        proc = DaemonProc(process, match.group(1), match.group(2), data_dir, log_path)
        yield proc
    finally:
        if proc is not None:
            proc.stop()
        elif process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)
        stdout.close()


@contextmanager
def running_fake_telegram(log_path: Path, ready_timeout: float = 20.0) -> Iterator[str]:
    """`python -m otm.devtools.fake_telegram` (the agents' Bot API); yields its base URL."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            python_cmd("-m", "otm.devtools.fake_telegram"),
            env=project_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True)
    reader.start()
    try:
        try:
            url = lines.get(timeout=ready_timeout).strip()
        except queue.Empty:
            url = ""
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError("fake Telegram did not start: " + log_path.read_text()[-2000:])
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        reader.join(5)
        stdout.close()


@contextmanager
def running_agent_daemon(base: Path, **extra_env: str) -> Iterator[DaemonProc]:
    """A daemon under ``base`` on a Redis of its own, running real (stand-in) agents that
    talk to a fake Telegram Bot API; short wake and stop deadlines."""
    with (
        running_redis(base / "redis") as redis_server,
        running_fake_telegram(base / "fake-telegram.log") as telegram_url,
    ):
        env = daemon_env(
            base / "otm",
            OTM_REDIS_URL=redis_server.url,
            OTM_ADMIN_PORT="0",
            OTM_ROUTER_PORT="0",
            OTM_TELEGRAM_API_BASE=telegram_url,
            OTM_WAKE_TIMEOUT_S="30",
            OTM_AGENT_STOP_GRACE_S="10",
            **extra_env,
        )
        with running_daemon(base / "otm", env=env) as daemon:
            yield daemon


@contextmanager
def interruptible(*args: str, env: Mapping[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A CLI subprocess that Ctrl-C can end; killed at exit if it is still running."""
    # Restore default SIGINT handling: a parent running us in the background may ignore it.
    process = subprocess.Popen(
        python_cmd(*args),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def interrupt_quietly(process: subprocess.Popen[str]) -> str:
    """Ctrl-C ends the command with 130 and no traceback; what it printed to stdout."""
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    return stdout
