"""A private redis-server for the embedded default (and for tests).

The message buffer lives in Redis, so the private server runs with AOF
(appendfsync always) under the data directory: a daemon restart finds every
buffered update again.

Access: the server listens on loopback, where every local user (and every
agent) can connect, so its one user (``default``) has a password, generated
once per data directory into ``{dir}/password`` (0600); unauthenticated clients
get NOAUTH. The server gets it through a 0600 config file, never on its command
line (visible to every user in ``ps``); the directory is 0700. Why not a
restricted ``default`` user plus one for the daemon: Redis 7.0 replays the AOF
as ``default``, and a ``default`` without permissions makes it drop every
MULTI/EXEC (every Lua script) on restart: the buffers would be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

REDIS_USER = "default"
PASSWORD_FILE = "password"
CONFIG_FILE = "redis-auth.conf"


class RedisServerMissing(RuntimeError):
    def __init__(self, binary: str) -> None:
        super().__init__(
            f"{binary!r} not found: the embedded default needs a local Redis server. "
            "Install it (Debian/Ubuntu: `apt-get install -y redis-server`, macOS: "
            "`brew install redis`) or set OTM_REDIS_URL to an existing Redis."
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start/stop one redis-server bound to 127.0.0.1 on a free port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str = "redis-server",
        port: int | None = None,
        durable: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.binary = binary
        self.port = port or 0
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self.password = ""

    @property
    def url(self) -> str:
        """Includes the credentials: never log it (settings.describe masks passwords)."""
        return f"redis://{REDIS_USER}:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise RedisServerMissing(self.binary)
        self.password = ensure_private_dir_password(self.data_dir)
        config = write_auth_config(self.data_dir, self.password)
        if not self.port:
            self.port = free_port()
        args = [
            path,
            str(config),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        # Own process group: a Ctrl-C aimed at the daemon must not kill Redis
        # before the daemon has finished with it.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_redis_child_setup,
        )
        if not wait_for_ping(self.process, self.port, self.password, self.data_dir, timeout_s):
            self.stop()
            raise RuntimeError(
                f"redis-server did not answer on port {self.port} within {timeout_s}s"
            )
        log.info("private redis-server on 127.0.0.1:%d (data %s)", self.port, self.data_dir)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        stop_server(proc, timeout_s)

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    async def astart(self) -> str:
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def wait_for_ping(
    process: subprocess.Popen[bytes],
    port: int,
    password: str | None,
    data_dir: Path,
    timeout_s: float,
) -> bool:
    """True once the redis-server ``process`` answers PING on 127.0.0.1:``port``, False
    after ``timeout_s``; RuntimeError with the tail of its log (``data_dir``/redis.log)
    if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_tail = _tail(data_dir / "redis.log")
            raise RuntimeError(f"redis-server exited with {process.returncode}: {log_tail}")
        if _answers_ping(port, password):
            return True
        time.sleep(0.02)
    return False


def stop_server(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """SIGTERM (redis flushes the AOF and exits), SIGKILL after ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ensure_private_dir_password(data_dir: Path) -> str:
    """The private server's password, generated once per data directory (0600 in a
    0700 directory). Rotation: stop the daemon, delete the file, start it again."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # also tightens a directory created by an older version
    path = data_dir / PASSWORD_FILE
    with contextlib.suppress(FileNotFoundError):
        password = path.read_text().strip()
        if password:
            os.chmod(path, 0o600)
            return password
    password = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.replace(tmp, path)
    return password


def write_auth_config(data_dir: Path, password: str) -> Path:
    """A 0600 config file carrying the ACL (redis-server reads it at start): the one
    user needs the password for anything (see the module doc for why ``default``)."""
    path = data_dir / CONFIG_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"user {REDIS_USER} on >{password} ~* &* +@all\n")
    return path


def _redis_child_setup() -> None:
    # The AOF and log files the server creates are readable by nobody else.
    os.umask(0o077)
    _terminate_with_parent()


RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Pauses before each restart attempt of a dead private redis-server; after the last
failed attempt the daemon gives up (exits non-zero, for its own supervisor to act)."""
STABLE_AFTER_S = 30.0
"""A server that ran this long resets the attempt count (a crash loop still ends)."""


async def wait_exit(proc: subprocess.Popen[bytes]) -> None:
    """Until ``proc`` exits: a pidfd readable on exit (Linux), else a slow poll."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        await asyncio.to_thread(proc.wait)  # ends with the process (stop() terminates it)
        return
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        if proc.poll() is None:
            await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def supervise(
    server: EmbeddedRedis,
    on_fatal: Callable[[str], None],
    backoff_s: tuple[float, ...] = RESTART_BACKOFF_S,
) -> None:
    """Restart the private redis-server whenever it dies (same port, dir and AOF: the
    clients reconnect to the same URL and find every buffered update); call ``on_fatal``
    with the reason when it cannot be restarted. Runs until cancelled."""
    attempt = 0
    while True:
        proc = server.process
        if proc is None:
            return  # stopped on purpose
        started = time.monotonic()
        await wait_exit(proc)
        if server.process is not proc:
            return  # stop() or kill() took it away: not a crash
        if time.monotonic() - started > STABLE_AFTER_S:
            attempt = 0
        log.error(
            "private redis-server exited with %s: restarting it (%s)",
            proc.returncode,
            _tail(server.data_dir / "redis.log", 2),
        )
        while True:
            if attempt >= len(backoff_s):
                on_fatal(f"private redis-server could not be restarted ({attempt} attempts)")
                return
            await asyncio.sleep(backoff_s[attempt])
            attempt += 1
            try:
                await server.astart()
                break
            except Exception as exc:
                log.error("restarting redis-server failed: %s", exc)


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies.

    A SIGKILLed daemon must not leave its private Redis behind: the restarted
    daemon would start a second redis-server appending to the same AOF file.
    SIGTERM lets Redis exit cleanly; with appendfsync always nothing acked is lost.
    (Linux only; elsewhere the daemon's own shutdown stops Redis.)"""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _answers_ping(port: int, password: str | None = None) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
        if password is not None:
            user, pw = REDIS_USER.encode(), password.encode()
            s.sendall(
                b"*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(user), user, len(pw), pw)
            )
            if not _read_reply(s).startswith(b"+OK"):
                return False
        s.sendall(b"PING\r\n")
        return _read_reply(s).startswith(b"+PONG")
    return False


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(64)
        if not chunk:
            break
        data += chunk
    return data


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
