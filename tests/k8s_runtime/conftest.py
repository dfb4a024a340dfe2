"""Fixtures: a fake Kubernetes API server with the tenant namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.support.fake_cluster import running_daemon_cluster
from tests.support.fake_k8s.fixture import FakeK8s


@pytest_asyncio.fixture
async def k8s(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    async with running_daemon_cluster(tmp_path, bookmark_interval=0.2) as fake:
        yield fake
