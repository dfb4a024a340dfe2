"""The rollout controller and its record on a real Redis and a SQLite registry: which tenants
move and when, what a rollback puts back, how events become health counts, and the
compare-and-set between the admin API and the leader."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.lifecycle.rollout import (
    RolloutConflict,
    RolloutController,
    Rollouts,
    RolloutStore,
)
from daemon.model import Tenant, TenantStatus
from daemon.rollout import Rollout, RolloutStatus
from tests.support.redis_cluster import BACKENDS

# The Redis tests also run on a Redis Cluster (tests/conftest.py parametrizes redis_backend).
REDIS_BACKENDS = BACKENDS

NEW = "oc:v2"
DEFAULT = "oc:v1"


class Published:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, tenant_id: str, kind: str, **data: Any) -> None:
        self.events.append((tenant_id, kind, data))


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RolloutStore:
    return RolloutStore(redis_client)


def controller(store: RolloutStore, registry: SqliteRegistry, published: Published) -> Any:
    return RolloutController(
        store=store, registry=registry, default_image=DEFAULT, publish=published
    )


async def test_moves_idle_tenants_keeps_running_ones_and_rolls_back_to_each_prior_image(
    store: RolloutStore, registry: SqliteRegistry
) -> None:
    await registry.create(Tenant(tenant_id="idle-default"))
    await registry.create(Tenant(tenant_id="idle-pinned", image="oc:v0"))
    running = await registry.create(Tenant(tenant_id="busy"))
    await registry.update("busy", if_version=running.version, status=TenantStatus.RUNNING)
    await registry.create(Tenant(tenant_id="other", labels={"tier": "prod"}))
    published = Published()
    loop = controller(store, registry, published)
    rollouts = Rollouts(store)
    await rollouts.start({"image": NEW, "steps": "100%", "selector": "tier!=prod"})

    stepped = await loop.step()
    assert stepped is not None and stepped.status == RolloutStatus.RUNNING
    assert "1 tenant(s) of this wave still running the old image" in stepped.reason
    images = {t.tenant_id: t.image for t in await registry.list()}
    assert images == {"idle-default": NEW, "idle-pinned": NEW, "busy": None, "other": None}
    assert await store.moved(stepped.rollout_id) == {"idle-default": "", "idle-pinned": "oc:v0"}
    assert ("idle-pinned", "image_changed", {"image": NEW, "rollout": stepped.rollout_id}) in (
        published.events
    )

    # A failed tenant on the new image: the rollback also makes it wakeable again.
    failing = await registry.get("idle-default")
    await registry.update("idle-default", if_version=failing.version, status=TenantStatus.FAILED,
                          wake_attempts=5)  # fmt: skip
    await rollouts.rollback("test")
    back = await loop.step()
    assert back is not None and back.status == RolloutStatus.ROLLED_BACK
    restored = {t.tenant_id: t for t in await registry.list()}
    assert restored["idle-pinned"].image == "oc:v0"  # its own image, not the default
    assert restored["idle-default"].image is None
    assert restored["idle-default"].status == TenantStatus.IDLE
    assert restored["idle-default"].wake_attempts == 0
    assert ("idle-default", "resumed") in [(t, k) for t, k, _ in published.events]
    assert await store.moved(back.rollout_id) == {}


async def test_events_count_per_side_only_while_leading(
    store: RolloutStore, registry: SqliteRegistry
) -> None:
    await registry.create(Tenant(tenant_id="a"))
    await registry.create(Tenant(tenant_id="b"))
    loop = controller(store, registry, Published())
    started = await Rollouts(store).start({"image": NEW, "steps": "50%,100%", "pause_s": 600})
    await loop.step()
    [moved] = await store.moved(started.rollout_id)
    [stayed] = {"a", "b"} - {moved}

    loop.on_event(moved, {"kind": "running"})  # not leading: ignored
    loop._leading = True  # what run() sets while this replica leads
    for tenant_id, event in [
        (moved, {"kind": "running", "endpoint": "http://x"}),
        (moved, {"kind": "wake_failed", "attempts": 1}),
        (moved, {"kind": "agent_5xx", "status": 502}),
        (moved, {"kind": "instance_lost", "reason": "OOMKilled"}),
        *[(stayed, {"kind": "running", "endpoint": "http://y"})] * 4,
        (stayed, {"kind": "running", "reason": "adopted by reconciler"}),  # not a wake
        (stayed, {"kind": "failed", "reason": "crash loop"}),
    ]:
        loop.on_event(tenant_id, event)
    current = await loop.step()
    assert current is not None
    new, old = await store.health(current)
    assert (new.wakes_ok, new.wakes_failed, new.agent_5xx, new.agents_lost) == (1, 1, 1, 1)
    assert (old.wakes_ok, old.wakes_failed, old.agents_lost) == (4, 0, 1)
    # New image: 3 errors in 2 wake attempts; old: 1 in 4. Rolled back.
    assert current.status == RolloutStatus.ROLLING_BACK
    assert "gate failed in wave 1" in current.reason


async def test_operator_changes_are_compare_and_set(
    store: RolloutStore, redis_client: aioredis.Redis
) -> None:
    rollouts = Rollouts(store)
    first = await rollouts.start({"image": NEW})
    with pytest.raises(RolloutConflict, match="is running"):
        await rollouts.start({"image": "oc:v3"})
    with pytest.raises(RolloutConflict):
        await store.put(first, expect_version=first.version - 1)  # a stale writer loses

    class LeaderWritesMeanwhile(RolloutStore):
        """The leader writes between the operator's read and write, once."""

        raced = False

        async def get(self) -> Rollout | None:
            current = await super().get()
            if current is not None and not self.raced:
                self.raced = True
                await super().put(current, expect_version=current.version)
            return current

    paused = await Rollouts(LeaderWritesMeanwhile(redis_client)).pause()
    assert paused.status == RolloutStatus.PAUSED
    assert paused.version == first.version + 2  # the leader's write, then the operator's
