"""Fault tests reuse the end-to-end harness: a real ``python -m daemon`` per test,
the fake Telegram Bot API in the test's loop, real agent processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fake_cluster import cluster_running_agents
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.servers import running_redis


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of the test's own (the session one is shared): a daemon or app
    another test left running on the shared server would answer this test's pub/sub
    signals and take its tenants' delivery leases."""
    with running_redis(tmp_path / "redis") as server:
        yield server.url


@pytest.fixture
async def cluster(tmp_path: Path, data_dir: Path) -> AsyncIterator[FakeK8s]:
    """A fake Kubernetes cluster running the agents, shared by replicas on one data dir."""
    async with cluster_running_agents(tmp_path, data_dir) as k8s:
        yield k8s
