"""Session-wide real servers: one redis-server and one moto server, reset per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from daemon.redis_client import connect
from tests.support.redis_cluster import RedisClusterProcs, require_redis_tools, running_cluster
from tests.support.servers import FAKE_AWS_ENV, reset_moto, running_moto, running_redis

# Shared fixtures live in tests/support and are registered here, so no tier imports
# another tier's conftest.
pytest_plugins = ["tests.support.daemon_fixtures", "tests.support.counting_registry"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server on a free loopback port (whole session)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module's ``REDIS_BACKENDS`` (e.g. BACKENDS) runs its Redis tests on each backend."""
    backends = getattr(metafunc.module, "REDIS_BACKENDS", None)
    if backends and "redis_backend" in metafunc.fixturenames:
        metafunc.parametrize("redis_backend", backends, indirect=True)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    """A 3-master, 3-replica Redis Cluster on loopback ports (whole session)."""
    require_redis_tools()
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    """``standalone`` unless a test is parametrized over BACKENDS (indirect)."""
    return str(getattr(request, "param", "standalone"))


@pytest.fixture
def redis_url(redis_backend: str, request: pytest.FixtureRequest) -> str:
    """The session Redis (or cluster, for the ``cluster`` backend), emptied before the test."""
    if redis_backend == "cluster":
        cluster: RedisClusterProcs = request.getfixturevalue("redis_cluster")
        cluster.wait_ok()
        cluster.flush()
        return cluster.url
    redis_server = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return str(redis_server)


@pytest.fixture
async def new_redis_client(
    redis_url: str, redis_backend: str
) -> AsyncIterator[Callable[[], aioredis.Redis]]:
    """Makes clients of the test's Redis the way the daemon does (cluster client for the
    ``cluster`` backend); all are closed at teardown."""
    made: list[aioredis.Redis] = []

    def make() -> aioredis.Redis:
        if redis_backend == "cluster":
            client = connect(redis_url, cluster=True, credentials={})
        else:
            client = aioredis.Redis.from_url(redis_url)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()


@pytest.fixture
async def redis_client(new_redis_client: Callable[[], aioredis.Redis]) -> aioredis.Redis:
    """An asyncio client of the test's Redis."""
    return new_redis_client()


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
