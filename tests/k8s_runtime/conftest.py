"""Fixtures: a fake Kubernetes API server with the tenant namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.k8s_runtime.support import NS
from tests.support.daemon_rbac import daemon_rbac_options
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s.fixture import FakeK8s


@pytest_asyncio.fixture
async def k8s(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    async with running_otm_k8s(
        tmp_path,
        namespaces=("default", NS),
        bookmark_interval=0.2,
        **daemon_rbac_options(),
    ) as fake:
        yield fake
