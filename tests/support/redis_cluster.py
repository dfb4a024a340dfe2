"""A real Redis Cluster for tests: three masters and three replicas (``redis-server
--cluster-enabled yes``) on free 127.0.0.1 ports, joined by ``redis-cli --cluster create``.

``running_cluster`` waits until every node reports ``cluster_state:ok`` and every replica
is in sync, and stops every process it started (a failed start included).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

NODES = 6
NODE_TIMEOUT_MS = 2000
"""Cluster bus timeout: how long before a silent master counts as failed."""
START_TIMEOUT_S = 30.0

BACKENDS = ["standalone", pytest.param("cluster", marks=pytest.mark.redis_cluster)]
"""``redis_backend`` values for ``pytest.mark.parametrize(..., indirect=True)``: the same
tests on the standalone Redis and on a cluster."""


def require_redis_tools() -> None:
    """Skip without redis-server/redis-cli, except in CI (.ci/run installs them)."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing in CI")
        pytest.skip(f"{', '.join(missing)} not installed")


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisClusterProcs:
    base: Path
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A startup node; the cluster client discovers the rest."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def start(self) -> None:
        for index in range(NODES):
            port = _free_cluster_port()
            node_dir = self.base / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            log = open(node_dir / "redis.log", "ab")  # noqa: SIM115 - the process holds it
            self.procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(NODE_TIMEOUT_MS),
                        "--appendonly",
                        "yes",
                        "--save",
                        "",
                        "--dir",
                        str(node_dir),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=node_dir,
                )
            )
            log.close()
            self.ports.append(port)
        for port in self.ports:
            self._wait(lambda p=port: bool(self.node(p).ping()), f"node {port} to answer")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S,
        )
        self.wait_ok()

    def wait_ok(self) -> None:
        """Until every node says the cluster is ok and every replica has synced."""
        self._wait(self._healthy, "the cluster to be ok with synced replicas")

    def _healthy(self) -> bool:
        masters = 0
        for port in self.ports:
            client = self.node(port)
            try:
                state = client.execute_command("CLUSTER INFO")  # parsed into a dict
                if state.get("cluster_state") != "ok":
                    return False
                info = client.info("replication")
            finally:
                client.close()
            if info["role"] == "master":
                masters += 1
            elif info.get("master_link_status") != "up":
                return False
        return masters == NODES // 2

    def masters(self) -> list[int]:
        out = []
        for port in self.ports:
            client = self.node(port)
            try:
                if client.info("replication")["role"] == "master":
                    out.append(port)
            finally:
                client.close()
        return out

    def flush(self) -> None:
        for port in self.masters():
            client = self.node(port)
            try:
                client.flushall()
            finally:
                client.close()

    def replica_of_slot_owner(self, key: str) -> tuple[int, int]:
        """(master port, one of its replicas' port) of the slot holding ``key``."""
        client = self.node(self.ports[0])
        try:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            nodes = client.execute_command("CLUSTER NODES")  # parsed: address -> fields
        finally:
            client.close()
        for address, fields in nodes.items():
            if any(int(lo) <= slot <= int(hi) for lo, hi, *_ in fields["slots"]):
                replicas = [
                    other
                    for other, f in nodes.items()
                    if f["master_id"] == fields["node_id"] and f["connected"]
                ]
                return _port(address), _port(replicas[0])
        raise RuntimeError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    @staticmethod
    def _wait(ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with suppress(redis.RedisError, OSError):
                if ready():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1].split("@")[0])


@contextmanager
def running_cluster(base: Path) -> Iterator[RedisClusterProcs]:
    cluster = RedisClusterProcs(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
