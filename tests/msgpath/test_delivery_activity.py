"""A delivered update is activity: delivery moves the tenant's ``last_active_at``
forward in the registry (what the idle culler reads)."""

from __future__ import annotations

import asyncio

from tests.msgpath.test_delivery_replicas import Agent, Replica, update, world  # noqa: F401


async def test_delivery_records_the_tenant_as_active(
    world: tuple[Agent, list[Replica]],  # noqa: F811 - the imported fixture
) -> None:
    agent, replicas = world
    replica = replicas[0]
    registry = replica.delivery.registry
    before = (await registry.get("t")).last_active_at
    assert (await replica.buffer.append("t", 1, update(1))).added
    replica.delivery.notify("t")
    await agent.wait_for(1, timeout=10)
    # The ack, then the touch, follow the delivery (another process could be asked only
    # by polling; this bounded loop is the test's, not the daemon's).
    for _ in range(500):
        if (await registry.get("t")).last_active_at != before:
            break
        await asyncio.sleep(0.02)
    assert (await registry.get("t")).last_active_at > before
