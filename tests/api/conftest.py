from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from daemon.settings import load_settings

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
async def admin(redis_url: str, data_dir: Path) -> AsyncIterator[TestClient]:
    settings = load_settings(
        flags={
            "data_dir": str(data_dir),
            "redis_url": redis_url,
            "admin_token": ADMIN_TOKEN,
            "router_port": 0,
        },
        env={},
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    try:
        yield client
    finally:
        await client.close()
