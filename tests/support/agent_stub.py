"""The stand-in agent (``python -m otm.devtools.agent_stub``) as a real process, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from daemon.agent.openclaw_config import DmPolicy, ModelProvider, render_openclaw_config
from daemon.telegram import SECRET_HEADER
from otm.devtools.fake_telegram import FakeTelegram
from otm.devtools.stub_llm import StubLLM
from tests.support.processes import spawn_logged

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class StubTenant:
    """One tenant's files and addresses: ``openclaw.json`` in its own state dir."""

    tenant_id: str
    state_dir: Path
    bot_token: str
    webhook_secret: str
    hooks_token: str
    gateway_port: int
    webhook_port: int
    webhook_path: str
    config: dict[str, Any]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def webhook_url(self) -> str:
        """The agent's own listener (what the otm router forwards to)."""
        return f"http://127.0.0.1:{self.webhook_port}{self.webhook_path}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "openclaw.json"

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))


def make_stub_tenant(
    root: Path,
    api_root: str,
    *,
    tenant_id: str = "t1",
    bot_token: str = "1001:fake-token",
    model_provider: ModelProvider | None = None,
    dm_policy: DmPolicy = "open",
    allow_from: list[str] | None = None,
) -> StubTenant:
    state_dir = root / tenant_id
    state_dir.mkdir(parents=True, exist_ok=True)
    gateway_port, webhook_port = free_port(), free_port()
    tenant = StubTenant(
        tenant_id=tenant_id,
        state_dir=state_dir,
        bot_token=bot_token,
        webhook_secret=f"secret-{tenant_id}",
        hooks_token=f"hooks-{tenant_id}",
        gateway_port=gateway_port,
        webhook_port=webhook_port,
        webhook_path="/telegram-webhook",
        config=render_openclaw_config(
            tenant_id=tenant_id,
            bot_token=bot_token,
            webhook_url=f"http://127.0.0.1:9/tg/{tenant_id}",
            webhook_secret=f"secret-{tenant_id}",
            webhook_host="127.0.0.1",
            webhook_port=webhook_port,
            api_root=api_root,
            gateway_port=gateway_port,
            gateway_bind="loopback",
            gateway_token=f"gw-{tenant_id}",
            hooks_token=f"hooks-{tenant_id}",
            workspace_dir=str(state_dir / "workspace"),
            model_provider=model_provider,
            dm_policy=dm_policy,
            allow_from=allow_from,
        ),
    )
    tenant.write_config()
    return tenant


class AgentStubProcess:
    """Start/stop one agent stub process; its stderr goes to ``<state_dir>/../<id>-agent.log``."""

    def __init__(self, tenant: StubTenant, **env: str) -> None:
        self.tenant = tenant
        self.env = env
        self.log_path = tenant.state_dir.parent / f"{tenant.tenant_id}-agent.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTM_", "OPENCLAW_"))}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            OPENCLAW_STATE_DIR=str(self.tenant.state_dir),
            OTM_AGENT_RETRY_INITIAL_S="0.1",
            OTM_AGENT_RETRY_MAX_S="0.5",
            OTM_AGENT_DRAIN_TIMEOUT_S="20",
        )
        env.update(self.env)
        # The log of earlier runs of this tenant stays (restart tests read both).
        self.process = await spawn_logged(
            sys.executable, "-m", "otm.devtools.agent_stub", log_path=self.log_path, env=env
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        async with asyncio.timeout(timeout_s):
            return await self.process.wait()

    async def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait, then SIGKILL the process group; returns the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return await self.wait(timeout_s)
            except TimeoutError:
                await self.kill()
        assert self.process.returncode is not None
        return self.process.returncode

    async def kill(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def wait_ready(self, http: aiohttp.ClientSession, timeout_s: float = 15.0) -> None:
        """Poll ``/readyz`` (bounded) until it says ready; fails early if the process died."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last: Any = None
        while loop.time() < deadline:
            if self.returncode is not None:
                raise AssertionError(f"agent exited {self.returncode}:\n{self.log_text()}")
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with http.get(f"{self.tenant.gateway_url}/readyz") as response:
                    last = await response.json()
                    if response.status == 200 and last.get("ready"):
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"agent not ready in {timeout_s}s (last {last}):\n{self.log_text()}")


async def post_update(
    http: aiohttp.ClientSession,
    tenant: StubTenant,
    update: dict[str, Any],
    *,
    secret: str | None = None,
) -> tuple[int, dict[str, str]]:
    """POST an update to the agent's webhook with the tenant's secret; (status, headers)."""
    headers = {SECRET_HEADER: tenant.webhook_secret if secret is None else secret}
    async with http.post(tenant.webhook_url, json=update, headers=headers) as response:
        await response.read()
        return response.status, dict(response.headers)


async def wait_agent_idle(
    http: aiohttp.ClientSession, tenant: StubTenant, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Poll ``/otm/activity`` (bounded) until no turn is pending; returns the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        async with http.get(f"{tenant.gateway_url}/otm/activity") as response:
            activity: dict[str, Any] = await response.json()
        if not activity["busy"]:
            return activity
        await asyncio.sleep(0.02)
    raise AssertionError(f"agent still busy after {timeout_s}s")


def stub_model_tenant(root: Path, telegram: FakeTelegram, llm: StubLLM) -> StubTenant:
    """A stub tenant whose agent talks to the stub LLM (model ``stub/stub-model``)."""
    provider = ModelProvider(name="stub", base_url=llm.base_url, model_id="stub-model", api_key="k")
    return make_stub_tenant(root, telegram.base_url, model_provider=provider)
