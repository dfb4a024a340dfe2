from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from otm.devtools.fake_telegram import FakeTelegram
from tests.support.admin_app import running_admin_app

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
async def admin(redis_url: str, redis_backend: str, data_dir: Path) -> AsyncIterator[TestClient]:
    cluster = {"redis_cluster": True} if redis_backend == "cluster" else {}
    async with running_admin_app(redis_url, data_dir, ADMIN_TOKEN, **cluster) as client:
        yield client


@pytest.fixture
async def admin_with_agents(redis_url: str, data_dir: Path) -> AsyncIterator[TestClient]:
    """The whole daemon app in-process (real Redis, SQLite, local stand-in agents that
    wake and sleep) with the fake Bot API."""
    async with (
        FakeTelegram(host="127.0.0.1", port=0) as telegram,
        running_admin_app(
            redis_url,
            data_dir,
            ADMIN_TOKEN,
            telegram_api_base=telegram.base_url,
            wake_timeout_s=30,
            agent_stop_grace_s=10,
        ) as client,
    ):
        yield client
