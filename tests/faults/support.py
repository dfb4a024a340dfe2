"""Helpers of the fault tests: a Telegram-like sender that retries until it gets a 200,
live-agent counting, and the exactly-once check on the agents' persisted logs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid
from daemon.msgpath.wake import STARTING_NOTICE
from daemon.telegram import SECRET_HEADER
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import Daemon, agent_update_log, replies
from tests.support.polling import eventually

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
RETRY_PAUSE_S = 0.1


class TelegramSender:
    """Posts updates the way Telegram does: anything but a 200 (an error status, a
    refused or broken connection) is retried, to whichever daemon is current."""

    def __init__(self, current: Callable[[], Daemon | None]) -> None:
        self.current = current
        self.http = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)
        self.attempts = 0
        self.non_200: dict[int, int] = {}
        self._progress = asyncio.Event()

    async def __aenter__(self) -> TelegramSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.close()

    async def post(self, router_url: str, tenant_id: str, secret: str, body: object) -> int:
        headers = {SECRET_HEADER: secret}
        async with self.http.post(f"{router_url}/tg/{tenant_id}", json=body, headers=headers) as r:
            await r.read()
            return r.status

    async def send(
        self, tenant_id: str, secret: str, update_id: int, chat_id: int, text: str,
        timeout: float = 60.0,
    ) -> None:  # fmt: skip
        """Until a router answered 200 for this update."""
        update = make_text_update(update_id, chat_id, text)
        async with asyncio.timeout(timeout):
            while True:
                daemon = self.current()
                if daemon is not None and daemon.router_url:
                    self.attempts += 1
                    self._progress.set()
                    status = 0
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                        status = await self.post(daemon.router_url, tenant_id, secret, update)
                    if status == 200:
                        return
                    self.non_200[status] = self.non_200.get(status, 0) + 1
                await asyncio.sleep(RETRY_PAUSE_S)

    async def wait_attempts(self, count: int, done: asyncio.Future[Any] | None = None) -> None:
        """Until ``count`` posts were attempted (or ``done`` finished)."""
        while self.attempts < count and not (done is not None and done.done()):
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):  # re-check ``done`` now and then
                    await self._progress.wait()


def live_agents(data_dir: Path, tenant_id: str) -> list[int]:
    """Pids of the tenant's agent processes that are alive (any daemon's)."""
    pid_files = (data_dir / "agents" / tenant_id).glob(f"*/{PID_FILE}")
    return [pid for pid in map(recorded_agent_pid, pid_files) if pid is not None]


def echoes(telegram: FakeTelegram, bot_token: str, chat_id: int) -> list[str]:
    return [t for t in replies(telegram, bot_token, chat_id) if t != STARTING_NOTICE]


def first_answers(telegram: FakeTelegram, bot_token: str, chat_id: int) -> list[str]:
    """Each distinct answer once, in order. (An agent killed between sending a reply and
    recording the turn may reply again after its restart: that is the agent's replay,
    not a second delivery; the persisted update log is the exactly-once evidence.)"""
    texts = [t.split(" (#")[0] for t in echoes(telegram, bot_token, chat_id)]
    return list(dict.fromkeys(texts))


class Census:
    """Samples how many of something (agents, pods) each tenant has, in the background
    between `start` and `stop`; ``peak`` is the most seen at once per tenant (must stay 1:
    one agent per tenant). Subclasses say what they count (`counts`)."""

    task_name = "census"

    def __init__(self, tenants: list[str], every_s: float = 0.05) -> None:
        self.tenants = tenants
        self.every_s = every_s
        self.peak: dict[str, int] = dict.fromkeys(tenants, 0)
        self._task: asyncio.Task[None] | None = None

    async def counts(self) -> dict[str, int]:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            for tenant_id, count in (await self.counts()).items():
                self.peak[tenant_id] = max(self.peak[tenant_id], count)
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class AgentCensus(Census):
    """Live agent processes per tenant (local runtime)."""

    task_name = "agent-census"

    def __init__(self, data_dir: Path, tenants: list[str], every_s: float = 0.05) -> None:
        super().__init__(tenants, every_s)
        self.data_dir = data_dir

    async def counts(self) -> dict[str, int]:
        return {
            tenant_id: len(await asyncio.to_thread(live_agents, self.data_dir, tenant_id))
            for tenant_id in self.tenants
        }


async def wait_all_answered(
    telegram: FakeTelegram, tenants: dict[str, str], chat_id: int, count: int, timeout: float
) -> None:
    """Until each tenant's chat got the echoes of its updates 1..count, first answers in order
    (``tenants``: id -> bot token; the updates' texts are ``{tenant}-{n}``)."""

    async def all_answered() -> bool:
        return all(
            first_answers(telegram, token, chat_id)
            == [f"echo: {t}-{n}" for n in range(1, count + 1)]
            for t, token in tenants.items()
        )

    await eventually(all_answered, timeout, "every update answered, in order")


async def sleep_and_check_each_update_recorded_once(
    daemon: Daemon, tenant_ids: list[str], count: int
) -> None:
    """Sleep each tenant (final state sync), then its agent's persisted update log must be
    1..count exactly: nothing lost, nothing twice."""
    for tenant_id in tenant_ids:
        status, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/sleep")
        assert status == 200, body
    for tenant_id in tenant_ids:
        assert agent_update_log(daemon.data_dir, tenant_id) == list(range(1, count + 1))
