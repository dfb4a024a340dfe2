from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination, LiveConfig
from daemon.lifecycle.culler import Culler
from daemon.metrics import Metrics
from daemon.msgpath.pubsub import TenantSignals
from daemon.msgpath.wake import EndpointCache, WakeManager
from daemon.settings import load_settings
from daemon.tasks import TaskGroup
from daemon.telegram import BotApi
from tests.loops.loop_support import make_culler, stop_tasks
from tests.loops.memory_runtime import MemoryRuntime


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


@pytest.fixture
async def wake(
    tmp_path: Path,
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
    metrics: Metrics,
) -> AsyncIterator[WakeManager]:
    """The daemon's wake/sleep over the loops' parts (what the culler sleeps tenants with)."""
    settings = load_settings(flags={"data_dir": str(tmp_path), "agent_stop_grace_s": 5.0}, env={})
    tasks = TaskGroup()
    async with aiohttp.ClientSession() as session:
        try:
            yield WakeManager(
                settings=settings,
                registry=registry,
                runtime=runtime,
                coordination=coordination,
                endpoints=EndpointCache(coordination),
                signals=TenantSignals(),
                bot_api=BotApi(session, "http://127.0.0.1:9"),
                metrics=metrics,
                tasks=tasks,
            )
        finally:
            await tasks.close()


@pytest.fixture
async def culler(
    registry: SqliteRegistry,
    runtime: MemoryRuntime,
    coordination: Coordination,
    wake: WakeManager,
) -> AsyncIterator[Culler]:
    """The culler over the loops' parts, running; stopped (bounded) at teardown."""
    culler = make_culler(registry, runtime, coordination, wake)
    task = asyncio.create_task(culler.run())
    try:
        yield culler
    finally:
        await stop_tasks(task)
