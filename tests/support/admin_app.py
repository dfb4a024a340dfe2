"""The daemon's admin app in-process (aiohttp TestServer), for API-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from daemon.settings import load_settings


@asynccontextmanager
async def running_admin_app(
    redis_url: str, data_dir: Path, token: str, **flags: object
) -> AsyncIterator[TestClient]:
    """A full daemon app (real Redis, SQLite, local runtime) with an authenticated client;
    ``flags`` are more settings, as `otm daemon` flags."""
    base = {"data_dir": str(data_dir), "redis_url": redis_url, "admin_token": token}
    settings = load_settings(
        flags={**base, "router_port": 0, "model_gateway_port": 0, **flags}, env={}
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {token}"
    try:
        yield client
    finally:
        await client.close()
