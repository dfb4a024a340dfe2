"""The real SQLite registry, counting reads: tests of the router's tenant cache see
through it whether a lookup reached the registry. A pytest plugin (tests/conftest.py)
for its ``counting_registry`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import Tenant


class CountingRegistry(SqliteRegistry):
    """SqliteRegistry whose ``reads`` counts the ``get`` calls."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    async def get(self, tenant_id: str) -> Tenant:
        self.reads += 1
        return await super().get(tenant_id)


@pytest.fixture
async def counting_registry(tmp_path: Path) -> AsyncIterator[CountingRegistry]:
    registry = CountingRegistry(tmp_path / "registry.sqlite3")
    yield registry  # pytest resumes a yield fixture after the test, failed or not
    await registry.close()
