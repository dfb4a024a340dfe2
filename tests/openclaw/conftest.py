"""Fixtures of the real-OpenClaw tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import running_redis


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis for this test alone: in a full run, other areas' session-scoped daemons sit
    on the session Redis and, as replicas of another "cluster", would join in delivery and
    leadership for this tenant."""
    with running_redis(tmp_path / "redis") as server:
        yield server.url
