from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.admin_app import running_admin_app

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
async def admin(redis_url: str, redis_backend: str, data_dir: Path) -> AsyncIterator[TestClient]:
    cluster = {"redis_cluster": True} if redis_backend == "cluster" else {}
    async with running_admin_app(redis_url, data_dir, ADMIN_TOKEN, **cluster) as client:
        yield client
