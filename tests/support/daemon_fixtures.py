"""Fixtures for tests that run real daemon processes (``python -m daemon``) against the
fake Telegram Bot API: a pytest plugin registered in tests/conftest.py, so every tier
(e2e, faults, loops) uses them without importing another tier's conftest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, end_orphan_agents

DaemonFactory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(host="127.0.0.1", port=0) as fake:
        yield fake


@pytest.fixture
async def start_daemon(
    redis_url: str, redis_backend: str, data_dir: Path, telegram: FakeTelegram
) -> AsyncIterator[DaemonFactory]:
    """Start daemons on the test's data dir and Redis; all are stopped at teardown."""
    started: list[Daemon] = []
    backend_env = {"OTM_REDIS_CLUSTER": "true"} if redis_backend == "cluster" else {}

    async def start(**env: str) -> Daemon:
        daemon = Daemon(data_dir, redis_url, telegram, **{**backend_env, **env})
        started.append(daemon)
        await daemon.start()
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            await daemon.stop()
        end_orphan_agents(data_dir)


@pytest.fixture
async def daemon(start_daemon: DaemonFactory) -> Daemon:
    return await start_daemon()
