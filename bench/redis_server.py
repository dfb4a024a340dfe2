"""A redis-server for benchmarks with a chosen AOF fsync policy.

The embedded default (daemon/embedded_redis.py) runs ``appendfsync always``:
every durable append waits for one fsync, which on this class of VM disk costs
~3 ms (p99 ~12 ms) by itself. Production Redis (ElastiCache, a Redis
StatefulSet) usually runs ``everysec``. Benchmarks run both so the router's
own cost and the disk's are told apart.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from daemon.embedded_redis import free_port, stop_server, wait_for_ping

FSYNC_POLICIES = ("always", "everysec", "no")


class BenchRedis:
    def __init__(self, data_dir: Path, *, fsync: str = "always", port: int | None = None) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}")
        self.data_dir = data_dir
        self.fsync = fsync
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 10.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if not wait_for_ping(self.process, self.port, None, self.data_dir, timeout_s):
            self.stop()
            raise RuntimeError(f"redis-server did not answer within {timeout_s}s")
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        stop_server(proc, timeout_s)

    def __enter__(self) -> BenchRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
