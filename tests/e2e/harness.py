"""A real daemon process (``python -m daemon``) for end-to-end tests, and its clients.

The fake Telegram Bot API runs in the test's event loop (FakeTelegram); the
daemon and every agent it starts are real processes talking to it over HTTP.
Tenants get their webhook secret the way Telegram does: the daemon registers
the webhook (setWebhook with ``secret_token``) on the fake, and the test reads
it from there — the admin API never returns secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid
from daemon.telegram import SECRET_HEADER
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.support.processes import end_process
from tests.support.servers import REPO_ROOT, project_env, python_cmd

ADMIN_TOKEN = "e2e-admin-token"
START_TIMEOUT_S = 30.0
STUB_DB = "agent-stub.sqlite"


class Daemon:
    """One ``python -m daemon`` process on a data dir; restartable on the same dir."""

    def __init__(self, data_dir: Path, redis_url: str, telegram: FakeTelegram, **env: str) -> None:
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.telegram = telegram
        self.extra_env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.admin_url = ""
        self.router_url = ""
        self.model_gateway_url = ""
        self.http: aiohttp.ClientSession | None = None
        self._stderr: Any = None
        self.log_path = data_dir / "daemon.log"

    def env(self) -> dict[str, str]:
        defaults = {
            "OTM_DATA_DIR": str(self.data_dir),
            "OTM_REDIS_URL": self.redis_url,
            "OTM_TELEGRAM_API_BASE": self.telegram.base_url,
            # Telegram (the fake) must learn each tenant's secret via setWebhook.
            "OTM_PUBLIC_BASE_URL": "http://127.0.0.1:9",
            "OTM_ADMIN_PORT": "0",
            "OTM_ROUTER_PORT": "0",
            "OTM_MODEL_GATEWAY_PORT": "0",
            "OTM_ADMIN_TOKEN": ADMIN_TOKEN,
            "OTM_AGENT_STOP_GRACE_S": "10",
            "OTM_WAKE_TIMEOUT_S": "30",
            "OTM_LOG_LEVEL": "INFO",
        }
        # Extra env wins over the defaults (a real gateway needs a longer wake timeout).
        return project_env(**{**defaults, **self.extra_env})

    async def start(self) -> None:
        self._stderr = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            *python_cmd("-m", "daemon"),
            cwd=REPO_ROOT,
            env=self.env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    line = (await self.proc.stdout.readline()).decode()
                    if not line:
                        raise RuntimeError(f"daemon exited early:\n{self.log_tail()}")
                    if line.startswith("otm daemon ready"):
                        break
        except BaseException:
            await self.kill()
            raise
        fields = dict(part.split("=", 1) for part in line.split()[3:])
        self.admin_url, self.router_url = fields["admin"], fields["router"]
        self.model_gateway_url = fields.get("model_gateway", "")
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no daemon log)"

    async def _close_http(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (agents get their final state sync), then SIGKILL if it hangs."""
        await self._close_http()
        proc, self.proc = self.proc, None
        if proc is not None:
            await end_process(proc, grace_s=timeout)
        self._close_log()
        end_orphan_agents(self.data_dir)

    async def kill(self) -> None:
        """SIGKILL: the crash case. Its agents survive as orphans (as pods would)."""
        await self._close_http()
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # -- admin API -----------------------------------------------------------------
    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.request(method, self.admin_url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = text
            return resp.status, body

    async def create_tenant(self, tenant_id: str, bot_token: str) -> str:
        """Create a tenant; returns the webhook secret Telegram learned for it."""
        status, body = await self.api(
            "POST", "/v1/tenants", json={"tenant_id": tenant_id, "bot_token": bot_token}
        )
        assert status == 201, body
        hook = self.telegram.webhooks[bot_token]
        assert hook.secret_token
        return hook.secret_token

    async def tenant(self, tenant_id: str) -> dict[str, Any]:
        status, body = await self.api("GET", f"/v1/tenants/{tenant_id}")
        assert status == 200, body
        return dict(body)

    # -- Telegram side ---------------------------------------------------------------
    async def post_update(
        self, tenant_id: str, secret: str | None, update: dict[str, Any] | bytes
    ) -> int:
        data = update if isinstance(update, bytes) else None
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        async with aiohttp.ClientSession() as session:
            kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": update}
            async with session.post(
                f"{self.router_url}/tg/{tenant_id}", headers=headers, **kwargs
            ) as resp:
                await resp.read()
                return resp.status

    async def send_text(
        self, tenant_id: str, secret: str, update_id: int, chat_id: int, text: str
    ) -> None:
        status = await self.post_update(
            tenant_id, secret, make_text_update(update_id, chat_id, text)
        )
        assert status == 200, f"router answered {status} for update {update_id}"


def replies(telegram: FakeTelegram, bot_token: str, chat_id: int) -> list[str]:
    return [m.text for m in telegram.sent(bot_token, chat_id)]


def agent_update_log(data_dir: Path, tenant_id: str) -> list[int]:
    """update_ids the tenant's agent persisted (its durable spool), in arrival order.

    Read from the latest state snapshot after the agent stopped (state store
    ``dir``), so this is what survives across sleep/wake."""
    import io
    import tarfile
    import tempfile

    snapshot = data_dir / "state" / "tenants" / tenant_id / "snapshots" / "latest.tar.gz"
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(snapshot.read_bytes()), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        db = sqlite3.connect(Path(tmp) / STUB_DB)
        try:
            rows = db.execute("SELECT update_id FROM updates ORDER BY seq").fetchall()
        finally:
            db.close()
    return [int(r[0]) for r in rows]


def end_orphan_agents(data_dir: Path) -> None:
    """Kill agents a SIGKILLed daemon left behind (tests never leak processes)."""
    for pid_file in (data_dir / "agents").glob(f"*/*/{PID_FILE}"):
        pid = recorded_agent_pid(pid_file)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
