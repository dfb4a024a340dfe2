from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination, LiveConfig
from daemon.metrics import Metrics

# Real daemon processes (python -m daemon): the e2e tier's fixtures, not a copy.
from tests.e2e.conftest import start_daemon, telegram  # noqa: F401
from tests.loops.memory_runtime import MemoryRuntime


async def eventually(
    predicate: Callable[[], Awaitable[bool] | bool], *, timeout: float = 5.0, what: str = ""
) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` (a bound, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def coordination(redis_client: aioredis.Redis) -> Coordination:
    return Coordination(redis_client, config_defaults=LiveConfig(default_idle_timeout_s=600))


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    reg = SqliteRegistry(tmp_path / "registry.sqlite3")
    try:
        yield reg
    finally:
        await reg.close()


@pytest.fixture
def runtime() -> MemoryRuntime:
    return MemoryRuntime()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


async def stop_tasks(*tasks: asyncio.Task[object], timeout: float = 5.0) -> None:
    """Cancel and wait (bounded): a loop that ignores cancellation fails the test."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    assert not pending, f"tasks ignored cancellation: {pending}"
