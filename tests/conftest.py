"""Session-wide real servers: one redis-server and one moto server, reset per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from tests.support.servers import FAKE_AWS_ENV, reset_moto, running_moto, running_redis

# Shared fixtures live in tests/support and are registered here, so no tier imports
# another tier's conftest.
pytest_plugins = ["tests.support.daemon_fixtures"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server on a free loopback port (whole session)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session Redis, emptied before the test."""
    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the test's Redis."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Fake credentials so boto3 never looks for real ones."""
    saved = {k: os.environ.get(k) for k in FAKE_AWS_ENV}
    os.environ.update(FAKE_AWS_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_server(aws_env: None) -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The session moto server with all state wiped before the test."""
    reset_moto(moto_server)
    return moto_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "otm-data"
    path.mkdir()
    return path
