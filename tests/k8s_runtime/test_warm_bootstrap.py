"""The warm pod's Node bootstrap as a real process: the gateway boots at pod start on the
warm config, the bind rewrites its config in place (same gateway process), readiness waits
for the tenant's webhook to take the tenant's secret, and a re-bind refreshes credentials."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from daemon.embedded_redis import free_port
from daemon.kube.warm_bootstrap import BOOTSTRAP_JS

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
TOKEN = "bind-token-123"
# A gateway that re-reads its config on every request, as OpenClaw hot-reloads it: /healthz
# and /readyz on the gateway port, the webhook checks the current secret.
FAKE_GATEWAY = r"""
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
path = os.environ['OPENCLAW_CONFIG_PATH']
json.dump({'pid': os.getpid(), 'env': dict(os.environ)}, open(sys.argv[1], 'w'))
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self, code):
        self.send_response(code); self.send_header('content-length', '0'); self.end_headers()
    def do_GET(self):
        self.answer(200 if self.path in ('/healthz', '/readyz') else 404)
    def do_POST(self):
        self.rfile.read(int(self.headers.get('content-length') or 0))
        tg = json.load(open(path))['channels']['telegram']
        if self.path != tg['webhookPath']: return self.answer(404)
        ok = self.headers.get('x-telegram-bot-api-secret-token') == tg.get('webhookSecret')
        ok = ok and not os.path.exists(path + '.channel-down')  # a test switch
        self.answer(400 if ok else 401)  # as OpenClaw: an empty body past the secret is a 400
servers = [ThreadingHTTPServer(('127.0.0.1', int(p)), H) for p in sys.argv[2:4]]
for s in servers: threading.Thread(target=s.serve_forever, daemon=True).start()
import signal; signal.sigwait({signal.SIGTERM}); sys.exit(0)
"""


def warm_config(gateway_port: int, webhook_port: int) -> dict[str, Any]:
    return {
        "gateway": {
            "port": gateway_port,
            "bind": "loopback",
            "auth": {"mode": "token", "token": "x"},
        },
        "channels": {
            "telegram": {
                "enabled": True,
                "webhookSecret": "template-secret",
                "webhookPort": webhook_port,
                "webhookPath": "/telegram-webhook",
            }
        },
        "agents": {"entries": {"warm": {}}},
    }


@dataclass
class Pod:
    base: str
    dir: Path
    proc: asyncio.subprocess.Process
    started: Path
    ports: tuple[int, int]

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "bind" / "openclaw.json").read_text())
        return data


async def _start(tmp_path: Path, *, wait_restore: bool) -> Pod:
    bind_port, gateway_port, webhook_port = free_port(), free_port(), free_port()
    started = tmp_path / "gateway-started.json"
    template = tmp_path / "warm.json"
    template.write_text(json.dumps(warm_config(gateway_port, webhook_port)))
    baked = tmp_path / "image" / "node-compile-cache" / "openclaw"
    baked.mkdir(parents=True)
    (baked / "entry.cache").write_bytes(b"compiled")
    (tmp_path / "tmp").mkdir()
    env = {
        "TMPDIR": str(tmp_path / "tmp"),
        "OTM_COMPILE_CACHE": str(baked.parent),
        "PATH": os.environ["PATH"],
        "OTM_BIND_PORT": str(bind_port),
        "OTM_BIND_HOST": "127.0.0.1",
        "OTM_BIND_DIR": str(tmp_path / "bind"),
        "OTM_BIND_TOKEN": TOKEN,
        "OTM_WARM_CONFIG": str(template),
        "OTM_WAIT_RESTORE": "1" if wait_restore else "0",
        "OPENCLAW_CONFIG_PATH": str(tmp_path / "bind" / "openclaw.json"),
        "OTM_GATEWAY_COMMAND": json.dumps(
            [sys.executable, "-c", FAKE_GATEWAY, str(started), str(gateway_port), str(webhook_port)]
        ),
    }
    proc = await asyncio.create_subprocess_exec(
        "node", "-e", BOOTSTRAP_JS, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    for _ in range(5):
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        if b"waiting for a bind" in line:
            break
    for _ in range(200):  # bounded: 10 s for the fake gateway to write its record
        if started.exists() and started.stat().st_size:
            break
        await asyncio.sleep(0.05)
    return Pod(
        f"http://127.0.0.1:{bind_port}", tmp_path, proc, started, (gateway_port, webhook_port)
    )


@pytest_asyncio.fixture
async def pod(tmp_path: Path) -> AsyncIterator[Pod]:
    p = await _start(tmp_path, wait_restore=False)
    try:
        yield p
    finally:
        if p.proc.returncode is None:
            p.proc.terminate()
        await p.proc.wait()


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def _until_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(100):  # bounded: 10 s
        status, _ = await _call(session, "GET", f"{base}/readyz")
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("never ready")


def bound_config(pod: Pod, secret: str) -> dict[str, Any]:
    config = warm_config(*pod.ports)
    config["channels"]["telegram"]["webhookSecret"] = secret
    config["agents"] = {"entries": {"main": {}}}
    return config


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_the_gateway_boots_before_the_bind_with_its_own_secrets(pod: Pod) -> None:
    record = json.loads(pod.started.read_text())
    assert "OTM_BIND_TOKEN" not in record["env"]  # the bind token stays with the bootstrap
    config = pod.config
    own_token = config["gateway"]["auth"]["token"]
    assert own_token not in ("x", "") and record["env"]["OPENCLAW_GATEWAY_TOKEN"] == own_token
    assert config["channels"]["telegram"]["webhookSecret"] != "template-secret"
    assert stat.S_IMODE((pod.dir / "bind" / "openclaw.json").stat().st_mode) == 0o600
    # The image's baked compile cache was copied into the pod's /tmp before the boot.
    copied = pod.dir / "tmp" / "node-compile-cache" / "openclaw" / "entry.cache"
    assert copied.read_bytes() == b"compiled"
    async with aiohttp.ClientSession() as session:
        assert (await _call(session, "GET", f"{pod.base}/healthz"))[0] == 200
        status, body = await _call(session, "GET", f"{pod.base}/readyz")
        assert (status, body["failing"]) == (503, ["unbound"])


async def test_bind_auth_and_validation(pod: Pod) -> None:
    payload = {"tenant_id": "alice", "config": bound_config(pod, "whsec-alice")}
    bind = f"{pod.base}/otm/bind"
    async with aiohttp.ClientSession() as session:
        assert (await _call(session, "POST", bind, json=payload))[0] == 401
        wrong = {"Authorization": "Bearer nope-nope-nope"}
        assert (await _call(session, "POST", bind, json=payload, headers=wrong))[0] == 401
        assert (await _call(session, "POST", bind, data=b"{", headers=AUTH))[0] == 400
        bad = {**payload, "tenant_id": "Not A Tenant"}
        assert (await _call(session, "POST", bind, json=bad, headers=AUTH))[0] == 400
        no_config = {"tenant_id": "alice"}
        assert (await _call(session, "POST", bind, json=no_config, headers=AUTH))[0] == 400
        assert (await _call(session, "GET", bind, headers=AUTH))[0] == 405
    assert "warm" in pod.config["agents"]["entries"]  # nothing was bound


async def test_bind_rewrites_the_running_gateways_config_and_refreshes_credentials(
    pod: Pod,
) -> None:
    pid = json.loads(pod.started.read_text())["pid"]
    own_token = pod.config["gateway"]["auth"]["token"]
    payload = {
        "tenant_id": "alice",
        "config": bound_config(pod, "whsec-alice"),
        "sync_env": {"S3_PREFIX": "tenants/alice/", "AWS_SESSION_TOKEN": "it's", "bad-key": "x"},
    }
    bind = f"{pod.base}/otm/bind"
    async with aiohttp.ClientSession() as session:
        status, body = await _call(session, "POST", bind, json=payload, headers=AUTH)
        assert (status, body) == (202, {"ok": True, "tenant_id": "alice"})
        await _until_ready(session, pod.base)
        # Ready means the tenant's webhook takes the tenant's secret, not the warm one.
        hook = f"http://127.0.0.1:{pod.ports[1]}/telegram-webhook"
        secret = {"x-telegram-bot-api-secret-token": "whsec-alice"}
        async with session.post(hook, data=b"", headers=secret) as resp:
            assert resp.status == 400
        # Another tenant cannot take the pod; the same tenant refreshes its credentials.
        other = {**payload, "tenant_id": "mallory"}
        assert (await _call(session, "POST", bind, json=other, headers=AUTH))[0] == 409
        refresh = {
            "tenant_id": "alice",
            "sync_env": {"S3_PREFIX": "tenants/alice/", "AWS_SESSION_TOKEN": "new"},
        }
        status, body = await _call(session, "POST", bind, json=refresh, headers=AUTH)
        assert (status, body["refreshed"]) == (200, True)
    assert pod.proc.returncode is None
    assert json.loads(pod.started.read_text())["pid"] == pid  # the same gateway process
    config = pod.config
    assert config["channels"]["telegram"]["webhookSecret"] == "whsec-alice"
    assert config["agents"] == {"entries": {"main": {}}}
    assert config["gateway"]["auth"]["token"] == own_token  # gateway section unchanged
    tenant_env = (pod.dir / "bind" / "tenant.env").read_text()
    assert "TENANT_ID='alice'\n" in tenant_env
    assert "AWS_SESSION_TOKEN='new'\n" in tenant_env
    assert "bad-key" not in tenant_env


async def test_the_config_waits_for_the_restore(tmp_path: Path) -> None:
    pod = await _start(tmp_path, wait_restore=True)
    try:
        payload = {
            "tenant_id": "alice",
            "config": bound_config(pod, "whsec-alice"),
            "sync_env": {"AWS_SESSION_TOKEN": "it's"},
        }
        async with aiohttp.ClientSession() as session:
            status, _ = await _call(
                session, "POST", f"{pod.base}/otm/bind", json=payload, headers=AUTH
            )
            assert status == 202
            await asyncio.sleep(0.3)
            status, body = await _call(session, "GET", f"{pod.base}/readyz")
            assert (status, body["failing"]) == (503, ["restoring"])
            assert "warm" in pod.config["agents"]["entries"]  # not yet the tenant's
            # The sidecar sources tenant.env with sh: the quoting must survive.
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
            # Restored and configured, but the channel does not take the secret yet.
            down = tmp_path / "bind" / "openclaw.json.channel-down"
            down.touch()
            (tmp_path / "bind" / "restored").touch()
            for _ in range(100):  # bounded: 10 s
                status, body = await _call(session, "GET", f"{pod.base}/readyz")
                if body["failing"] != ["restoring"]:
                    break
                await asyncio.sleep(0.1)
            assert (status, body["failing"]) == (503, ["webhook"])
            down.unlink()
            await _until_ready(session, pod.base)
        assert pod.config["agents"] == {"entries": {"main": {}}}
    finally:
        if pod.proc.returncode is None:
            pod.proc.terminate()
        await pod.proc.wait()


async def test_a_failed_restore_ends_the_pod(tmp_path: Path) -> None:
    pod = await _start(tmp_path, wait_restore=True)
    try:
        payload = {"tenant_id": "alice", "config": bound_config(pod, "whsec-alice")}
        async with aiohttp.ClientSession() as session:
            status, _ = await _call(
                session, "POST", f"{pod.base}/otm/bind", json=payload, headers=AUTH
            )
            assert status == 202
        (tmp_path / "bind" / "restore-failed").touch()
        assert await asyncio.wait_for(pod.proc.wait(), 10) != 0  # the pod fails
        assert "warm" in pod.config["agents"]["entries"]  # never bound on missing state
    finally:
        if pod.proc.returncode is None:
            pod.proc.kill()
        await pod.proc.wait()
