"""The warm pod's Node bootstrap as a real process: probes, auth, bind, hand-over."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from daemon.embedded_redis import free_port
from daemon.kube.warm_bootstrap import BOOTSTRAP_JS

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
TOKEN = "bind-token-123"
# The "gateway": records what it was started with, then exits 0 (so does the bootstrap).
RECORDER = (
    "import json, os, sys; "
    "json.dump({'config': open(os.environ['OPENCLAW_CONFIG_PATH']).read(), "
    "'env': {k: v for k, v in os.environ.items() if k.startswith(('OTM_', 'TENANT', 'OPENCLAW'))}},"
    " open(sys.argv[1], 'w'))"
)


@pytest_asyncio.fixture
async def bootstrap(tmp_path: Path) -> AsyncIterator[tuple[str, Path, asyncio.subprocess.Process]]:
    port = free_port()
    out = tmp_path / "gateway-started.json"
    env = {
        "PATH": "/usr/bin:/bin",
        "OTM_BIND_PORT": str(port),
        "OTM_BIND_HOST": "127.0.0.1",
        "OTM_BIND_DIR": str(tmp_path / "bind"),
        "OTM_BIND_TOKEN": TOKEN,
        "OTM_WAIT_RESTORE": "0",
        "OPENCLAW_CONFIG_PATH": str(tmp_path / "bind" / "openclaw.json"),
        "OTM_GATEWAY_COMMAND": json.dumps([sys.executable, "-c", RECORDER, str(out)]),
    }
    proc = await asyncio.create_subprocess_exec(
        "node", "-e", BOOTSTRAP_JS, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert b"waiting for a bind" in line
        yield f"http://127.0.0.1:{port}", out, proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_probes_auth_and_bind(
    bootstrap: tuple[str, Path, asyncio.subprocess.Process], tmp_path: Path
) -> None:
    base, out, proc = bootstrap
    payload = {
        "tenant_id": "alice",
        "config": {"gateway": {"port": 18789}},
        "env": {"TENANT_ID": "alice", "OPENCLAW_GATEWAY_TOKEN": "gw", "bad-key": "x"},
        "sync_env": {"S3_PREFIX": "tenants/alice/", "AWS_SESSION_TOKEN": "it's"},
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        assert await _call(session, "GET", f"{base}/healthz") == (
            200,
            {"ok": True, "status": "live"},
        )
        status, body = await _call(session, "GET", f"{base}/readyz")
        assert (status, body["failing"]) == (503, ["unbound"])
        bind = f"{base}/otm/bind"
        assert (await _call(session, "POST", bind, json=payload))[0] == 401
        wrong = {"Authorization": "Bearer nope-nope-nope"}
        assert (await _call(session, "POST", bind, json=payload, headers=wrong))[0] == 401
        assert (await _call(session, "POST", bind, data=b"{", headers=auth))[0] == 400
        bad = {**payload, "tenant_id": "Not A Tenant"}
        assert (await _call(session, "POST", bind, json=bad, headers=auth))[0] == 400
        status, body = await _call(session, "POST", bind, json=payload, headers=auth)
        assert (status, body) == (202, {"ok": True, "tenant_id": "alice"})

    assert await asyncio.wait_for(proc.wait(), 10) == 0  # the gateway ran and exited 0
    started = json.loads(out.read_text())
    assert json.loads(started["config"]) == payload["config"]
    assert started["env"]["TENANT_ID"] == "alice"
    assert started["env"]["OPENCLAW_GATEWAY_TOKEN"] == "gw"
    assert "OTM_BIND_TOKEN" not in started["env"]  # the bind token stays with the bootstrap
    config_file = tmp_path / "bind" / "openclaw.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    tenant_env = (tmp_path / "bind" / "tenant.env").read_text()
    assert "TENANT_ID='alice'\n" in tenant_env
    assert "S3_PREFIX='tenants/alice/'\n" in tenant_env
    assert "AWS_SESSION_TOKEN='it'\\''s'\n" in tenant_env
    # The sync sidecar sources it with sh: the quoting must survive.
    sourced = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        '. "$1"; printf %s "$AWS_SESSION_TOKEN"',
        "sh",
        str(tmp_path / "bind" / "tenant.env"),
        stdout=asyncio.subprocess.PIPE,
    )
    value, _ = await sourced.communicate()
    assert value == b"it's"
