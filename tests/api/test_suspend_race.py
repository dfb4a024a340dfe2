"""A suspend that a wake races: the hold never leaves an agent running behind it.

The suspend stops the running agent; meanwhile a wake (the router's, on a buffered
message) finishes that stop itself and boots a new agent. The suspend's conditional write
then fails, and it must look again: stop the new agent too and write the hold detached.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon import app_keys as keys
from daemon.model import TenantStatus


async def test_a_wake_racing_a_suspend_is_stopped_too(
    admin_with_agents: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = admin_with_agents
    app = admin.server.app
    runtime, wake = app[keys.RUNTIME], app[keys.WAKE]
    resp = await admin.post("/v1/tenants", json={"tenant_id": "race", "bot_token": "9:race"})
    assert resp.status == 201, await resp.text()
    resp = await admin.post("/v1/tenants/race/wake?wait=true")
    assert resp.status == 200, await resp.text()

    real_stop = runtime.stop
    raced: list[Any] = []
    stops = 0

    async def stop_then_a_wake_wins(tenant_id: str, **kwargs: Any) -> None:
        nonlocal stops
        stops += 1
        await real_stop(tenant_id, **kwargs)
        if stops == 1:  # the suspend's own stop: a wake boots a new agent right after it
            raced.append(await wake.wake(tenant_id))

    monkeypatch.setattr(runtime, "stop", stop_then_a_wake_wins)
    resp = await admin.post("/v1/tenants/race/suspend")
    assert resp.status == 200, await resp.text()
    assert raced and raced[0].status == TenantStatus.RUNNING  # the race did happen

    tenant = await (await admin.get("/v1/tenants/race")).json()
    assert tenant["status"] == "suspended"
    assert tenant["endpoint"] is None
    assert await runtime.get("race") is None  # no agent runs behind the hold
