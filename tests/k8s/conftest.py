"""Fixtures for the Kubernetes tests: `fake_k8s` (a running fake apiserver + kubeconfig)
and `cluster` (the conformance target: the fake, or a real cluster, see cluster.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.k8s.cluster import REAL_KUBECONFIG_ENV, Cluster, open_cluster
from tests.support.fake_k8s.fixture import fake_k8s

__all__ = ["cluster", "fake_k8s"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"fake_only: needs the fake apiserver's control hooks; skipped when "
        f"{REAL_KUBECONFIG_ENV} points the conformance suite at a real cluster",
    )


@pytest_asyncio.fixture
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    if os.environ.get(REAL_KUBECONFIG_ENV) and request.node.get_closest_marker("fake_only"):
        pytest.skip("needs the fake apiserver's control hooks")
    async with open_cluster(tmp_path) as target:
        yield target
