"""The composition root runs the Kubernetes warm pool and, when the runtime vends tenant
credentials, their refresher as leader-only tasks, and removes both on shutdown."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from daemon import app_keys as keys
from daemon import wiring


class RecordingLeaderTasks:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []

    def add(self, name: str, factory: Any) -> None:
        self.added.append(name)

    async def remove(self, name: str) -> None:
        self.removed.append(name)


async def _run_ctx(refresher: Any) -> RecordingLeaderTasks:
    async def run() -> None:  # never started by the recorder
        return None

    app = web.Application()
    tasks = RecordingLeaderTasks()
    app[keys.LEADER_TASKS] = tasks  # type: ignore[assignment]
    app[keys.WARM_POOL] = SimpleNamespace(run=run)  # type: ignore[assignment]
    app[keys.RUNTIME] = SimpleNamespace(refresher=refresher)  # type: ignore[assignment]
    ctx = wiring.warm_pool_ctx(app)
    await anext(ctx)
    assert tasks.removed == []
    with contextlib.suppress(StopAsyncIteration):
        await anext(ctx)
    assert tasks.removed == tasks.added  # shutdown removes every task it added
    return tasks


async def test_the_credential_refresher_runs_with_the_warm_pool_while_leading() -> None:
    async def run() -> None:
        return None

    tasks = await _run_ctx(SimpleNamespace(run=run))
    assert tasks.added == ["warm-pool", "warm-credentials"]


async def test_no_refresher_without_vended_credentials() -> None:
    tasks = await _run_ctx(None)
    assert tasks.added == ["warm-pool"]
