"""Warm pool sizing (leader loop) and claims (any replica) against the fake API server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.coordination import Coordination
from daemon.kube import manifests as m
from daemon.kube.client import call_json
from daemon.kube.warm_pool import WARM_DELETE_GRACE_S, WarmPool, claimable
from daemon.lifecycle.rollout import RolloutController, Rollouts, RolloutStore
from daemon.metrics import Metrics
from daemon.rollout import RolloutStatus
from tests.k8s_runtime.support import NS, POD_SETTINGS, api_pods, open_runtime
from tests.support.fake_k8s.fixture import FakeK8s


@pytest.fixture
def coordination(redis_client: aioredis.Redis) -> Coordination:
    return Coordination(redis_client)


def _pool(runtime: KubernetesRuntime) -> WarmPool:
    assert runtime.warm_pool is not None
    return runtime.warm_pool


@contextlib.asynccontextmanager
async def _running(pool: WarmPool) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(pool.run(), name="warm-pool-under-test")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _wait(runtime: KubernetesRuntime, check: Callable[[], bool]) -> None:
    await runtime.informer.wait_for(lambda _cache: True if check() else None, timeout=10)


async def _live_warm_pods(runtime: KubernetesRuntime) -> list[str]:
    pods = await api_pods(runtime, m.WARM_SELECTOR)
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


async def test_pool_follows_live_config_target(k8s: FakeK8s, coordination: Coordination) -> None:
    metrics = Metrics()
    async with open_runtime(
        k8s.kubeconfig_path, warm=True, coordination=coordination, metrics=metrics
    ) as runtime:
        pool = _pool(runtime)
        await coordination.set_config({"warm_pool_target": 3})
        async with _running(pool):
            await _wait(runtime, lambda: pool.available() == 3)
            assert len(await _live_warm_pods(runtime)) == 3
            assert metrics.warm_pool_target._value.get() == 3
            assert metrics.warm_pool_size._value.get() == 3

            await coordination.set_config({"warm_pool_target": 1})
            await _wait(runtime, lambda: pool.size == 1 and pool.available() == 1)
            await _wait(runtime, lambda: len(runtime.informer.cache) == 1)
            assert len(await _live_warm_pods(runtime)) == 1

            await coordination.set_config({"warm_pool_target": 0})
            await _wait(runtime, lambda: not runtime.informer.cache)
            assert await _live_warm_pods(runtime) == []
            assert metrics.warm_pool_size._value.get() == 0


async def test_claim_relabels_and_the_pool_replenishes(
    k8s: FakeK8s, coordination: Coordination
) -> None:
    async with open_runtime(k8s.kubeconfig_path, warm=True, coordination=coordination) as runtime:
        pool = _pool(runtime)
        await coordination.set_config({"warm_pool_target": 2})
        async with _running(pool):
            await _wait(runtime, lambda: pool.available() == 2)
            claimed = await pool.claim("alice")
            assert claimed is not None
            labels = claimed["metadata"]["labels"]
            assert labels["otm/tenant"] == "alice" and "otm/warm" not in labels
            assert claimed["metadata"]["annotations"][m.ANNOTATION_CLAIMED_AT]
            assert not m.is_warm(claimed) and m.pod_tenant(claimed) == "alice"
            name = claimed["metadata"]["name"]
            cache = runtime.informer.cache
            await _wait(runtime, lambda: m.pod_tenant(cache[name]) == "alice")
            # Replenished: two unclaimed pods again, plus the claimed one.
            await _wait(runtime, lambda: pool.available() == 2)
            assert len(await _live_warm_pods(runtime)) == 2
            assert len(await api_pods(runtime, m.OPENCLAW_SELECTOR)) == 3


async def test_failed_warm_pods_are_replaced(k8s: FakeK8s, coordination: Coordination) -> None:
    async with open_runtime(k8s.kubeconfig_path, warm=True, coordination=coordination) as runtime:
        pool = _pool(runtime)
        await coordination.set_config({"warm_pool_target": 1})
        async with _running(pool):
            await _wait(runtime, lambda: pool.available() == 1)
            (first,) = await _live_warm_pods(runtime)
            await k8s.server.fail_pod(NS, first)
            await _wait(runtime, lambda: first not in runtime.informer.cache)
            await _wait(runtime, lambda: pool.available() == 1)
            (second,) = await _live_warm_pods(runtime)
            assert second != first


async def test_two_replicas_never_claim_the_same_pod(k8s: FakeK8s) -> None:
    async with (
        open_runtime(k8s.kubeconfig_path, warm=True) as replica_a,
        open_runtime(k8s.kubeconfig_path, warm=True) as replica_b,
    ):
        for _ in range(3):
            await call_json(
                replica_a.core.create_namespaced_pod, NS, await _pool(replica_a).pod_body()
            )
        for replica in (replica_a, replica_b):
            await _wait(replica, lambda r=replica: _pool(r).available() == 3)  # type: ignore[misc]

        tenants = ["t1", "t2", "t3", "t4", "t5"]
        pools = [_pool(replica_a), _pool(replica_b)]
        results = await asyncio.gather(
            *(pools[i % 2].claim(tenant) for i, tenant in enumerate(tenants))
        )
        claimed = {t: r["metadata"]["name"] for t, r in zip(tenants, results, strict=True) if r}
        assert len(claimed) == 3  # three pods, five claims: two come back empty
        assert len(set(claimed.values())) == 3  # no pod went to two tenants
        by_name = {p["metadata"]["name"]: p for p in await api_pods(replica_a)}
        for tenant, name in claimed.items():
            assert by_name[name]["metadata"]["labels"]["otm/tenant"] == tenant
        assert not [p for p in by_name.values() if claimable(p)]


async def test_claims_are_image_aware_and_old_image_pods_are_replaced(
    k8s: FakeK8s, coordination: Coordination
) -> None:
    old_settings = dataclasses.replace(POD_SETTINGS, image="openclaw:old")
    async with open_runtime(k8s.kubeconfig_path, warm=True, coordination=coordination) as runtime:
        pool = _pool(runtime)
        # A warm pod left by a daemon that ran the previous image.
        old_pool_body = await pool.pod_body()
        old_body = m.warm_pod(
            settings=old_settings, config_sha256=m.warm_pod_config_hash(old_pool_body) or ""
        )
        old = await call_json(runtime.core.create_namespaced_pod, NS, old_body)
        old_name = old["metadata"]["name"]
        await _wait(runtime, lambda: claimable(runtime.informer.cache.get(old_name) or {}))
        # Neither a tenant of the pool's image nor of another image gets it.
        assert await pool.claim("alice") is None
        assert await pool.claim("bob", image="openclaw:other") is None
        assert pool.status() == {"target": 0, "ready": 0, "booting": 0, "stale": 1}
        await coordination.set_config({"warm_pool_target": 1})
        async with _running(pool):
            await _wait(runtime, lambda: old_name not in runtime.informer.cache)
            await _wait(runtime, lambda: pool.available() == 1)
            (fresh,) = await _live_warm_pods(runtime)
            assert pool.status() == {"target": 1, "ready": 1, "booting": 0, "stale": 0}
            assert m.warm_pod_image(runtime.informer.cache[fresh]) == POD_SETTINGS.image
            assert await pool.claim("carol", image="openclaw:old") is None
            claimed = await pool.claim("carol", image=POD_SETTINGS.image)
            assert claimed is not None and claimed["metadata"]["name"] == fresh


async def test_pods_of_an_old_warm_config_are_never_claimed(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path, warm=True) as runtime:
        pool = _pool(runtime)
        await pool.warm_config()  # the Secrets a warm pod's env and volumes name
        stale = m.warm_pod(settings=POD_SETTINGS, config_sha256="0" * 64)
        pod = await call_json(runtime.core.create_namespaced_pod, NS, stale)
        name = pod["metadata"]["name"]
        await _wait(runtime, lambda: claimable(runtime.informer.cache.get(name) or {}))
        assert await pool.claim("alice") is None
        await pool.reconcile()  # target 0: the stale pod goes
        await _wait(runtime, lambda: name not in runtime.informer.cache)


async def test_the_pool_never_deletes_a_pod_claimed_since_it_chose_it(k8s: FakeK8s) -> None:
    """The leader picks a warm pod to delete from its cache while another replica claims
    it: the delete carries the pod's uid and resourceVersion as preconditions, so the
    tenant's pod survives (409, decided again on the next pass)."""
    async with (
        open_runtime(k8s.kubeconfig_path, warm=True) as leader,
        open_runtime(k8s.kubeconfig_path, warm=True) as other,
    ):
        await call_json(leader.core.create_namespaced_pod, NS, await _pool(leader).pod_body())
        await _wait(leader, lambda: _pool(leader).available() == 1)
        (chosen,) = _pool(leader).warm_pods()
        claimed = await _pool(other).claim("alice")
        assert claimed is not None
        await _pool(leader)._delete(chosen)  # the choice made before the claim
        (survivor,) = await api_pods(leader, m.OPENCLAW_SELECTOR)
        assert m.pod_tenant(survivor) == "alice"
        assert not survivor["metadata"].get("deletionTimestamp")


async def test_warm_pods_are_deleted_with_a_grace_period_not_forced(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path, warm=True) as runtime:
        pool = _pool(runtime)
        await call_json(runtime.core.create_namespaced_pod, NS, await pool.pod_body())
        await _wait(runtime, lambda: pool.available() == 1)
        (pod,) = pool.warm_pods()
        k8s.server.clear_requests()
        await pool._delete(pod)
        (delete,) = [r for r in k8s.server.requests if r.method == "DELETE"]
        assert delete.query["gracePeriodSeconds"] == str(WARM_DELETE_GRACE_S)
        assert WARM_DELETE_GRACE_S > 0


def _images(runtime: KubernetesRuntime) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in runtime.informer.cache.values():
        if m.is_warm(pod) and not pod["metadata"].get("deletionTimestamp"):
            image = m.warm_pod_image(pod) or ""
            counts[image] = counts.get(image, 0) + 1
    return counts


async def test_pool_holds_both_images_during_a_rollout_and_recycles_the_old_one(
    k8s: FakeK8s, coordination: Coordination, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    new_image = "openclaw:new"
    store = RolloutStore(redis_client)
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    async with open_runtime(k8s.kubeconfig_path, warm=True, coordination=coordination) as runtime:
        pool = _pool(runtime)
        controller = RolloutController(
            store=store,
            registry=registry,
            default_image=POD_SETTINGS.image,
            publish=coordination.publish_event,
            on_pool_mix=pool.set_image_mix,
        )
        await coordination.set_config({"warm_pool_target": 4})
        async with _running(pool):
            await _wait(runtime, lambda: _images(runtime) == {POD_SETTINGS.image: 4})
            old_pods = set(await _live_warm_pods(runtime))

            started = await Rollouts(store).start({"image": new_image, "steps": "25%,100%"})
            await controller.step()  # the first wave: a quarter of the pool on the new image
            await _wait(runtime, lambda: _images(runtime) == {POD_SETTINGS.image: 3, new_image: 1})
            await _wait(runtime, lambda: pool.available() == 4)
            claimed = await pool.claim("alice", image=new_image)
            assert claimed is not None and m.warm_pod_image(claimed) == new_image
            await _wait(runtime, lambda: pool.available() == 4)  # replenished with its image

            # Every tenant on the new image: the old image's warm pods are recycled.
            current = await store.get()
            assert current is not None and current.rollout_id == started.rollout_id
            done = dataclasses.replace(current, status=RolloutStatus.COMPLETED, wave=1)
            await store.put(done, expect_version=current.version)
            await controller.step()
            await _wait(runtime, lambda: _images(runtime) == {new_image: 4})
            await _wait(runtime, lambda: pool.available() == 4)
            assert not old_pods & set(await _live_warm_pods(runtime))
            assert pool.status()["stale"] == 0
            assert await pool.claim("bob", image=POD_SETTINGS.image) is None
    await registry.close()
