"""Conformance of the fake apiserver: paginated lists (`limit`/`continue`), as etcd serves
them and as the daemon's informer relies on at 10,000 pods.

Through kubernetes_asyncio only, so the file runs against a real cluster too
(`OTM_CONFORMANCE_KUBECONFIG`, see cluster.py); `fake_only` tests need the fake's history
compaction hook.
"""

# kubernetes_asyncio annotates request bodies as models but takes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import pytest

from tests.k8s.cluster import SUITE_SELECTOR, Cluster, configmap, expect_status


async def _configmaps(cluster: Cluster, count: int) -> None:
    for i in range(count):
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(f"c{i}"))


async def test_continue_pages_show_the_first_pages_snapshot(cluster: Cluster) -> None:
    """`limit` returns a page plus a `continue` token that yields the rest, in order; and
    every page shows the objects as they were at the first page's resourceVersion (and
    carries that RV): writes made between pages do not show."""
    await _configmaps(cluster, 5)
    first = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=SUITE_SELECTOR, limit=2
    )
    assert [c.metadata.name for c in first.items] == ["c0", "c1"]
    assert first.metadata._continue
    await cluster.core.patch_namespaced_config_map(
        "c2", cluster.namespace, {"data": {"k": "changed"}}
    )
    await cluster.core.delete_namespaced_config_map("c3", cluster.namespace)
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("c9"))
    rest = await cluster.core.list_namespaced_config_map(
        cluster.namespace,
        label_selector=SUITE_SELECTOR,
        limit=10,
        _continue=first.metadata._continue,
    )
    assert [c.metadata.name for c in rest.items] == ["c2", "c3", "c4"]
    assert rest.items[0].data == {"k": "v"}
    assert rest.metadata.resource_version == first.metadata.resource_version
    assert not rest.metadata._continue
    fresh = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=SUITE_SELECTOR
    )
    assert [c.metadata.name for c in fresh.items] == ["c0", "c1", "c2", "c4", "c9"]


async def test_remaining_item_count_only_without_selectors(cluster: Cluster) -> None:
    """`remainingItemCount` counts what the later pages hold, but only for a list without
    label or field selectors: with one the apiserver cannot know and leaves it unset."""
    for i in range(5):  # Secrets: a real cluster puts none of its own in a new namespace
        body = {"metadata": {"name": f"s{i}", "labels": {"otm.dev/suite": "conformance"}}}
        await cluster.core.create_namespaced_secret(cluster.namespace, body)
    plain = await cluster.core.list_namespaced_secret(cluster.namespace, limit=2)
    assert plain.metadata.remaining_item_count == 3
    selected = await cluster.core.list_namespaced_secret(
        cluster.namespace, label_selector=SUITE_SELECTOR, limit=2
    )
    assert [s.metadata.name for s in selected.items] == ["s0", "s1"]
    assert selected.metadata._continue
    assert selected.metadata.remaining_item_count is None


async def test_continue_with_a_resource_version_is_400(cluster: Cluster) -> None:
    """A continued list is served at its token's RV: naming another one is refused."""
    await _configmaps(cluster, 3)
    first = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=SUITE_SELECTOR, limit=1
    )
    body = await expect_status(
        cluster.core.list_namespaced_config_map(
            cluster.namespace,
            label_selector=SUITE_SELECTOR,
            limit=1,
            _continue=first.metadata._continue,
            resource_version=first.metadata.resource_version,
        ),
        400,
    )
    assert body["reason"] == "BadRequest"


async def test_malformed_continue_token_is_400(cluster: Cluster) -> None:
    await expect_status(
        cluster.core.list_namespaced_config_map(cluster.namespace, _continue="not-a-token"), 400
    )


@pytest.mark.fake_only
async def test_continue_after_compaction_is_410_expired(cluster: Cluster) -> None:
    """A continue token older than the compacted history fails with 410 Expired; a new list
    without it works (what a client must then do)."""
    fake = cluster.require_fake()
    await _configmaps(cluster, 3)
    first = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=SUITE_SELECTOR, limit=1
    )
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("c9"))
    fake.compact()
    body = await expect_status(
        cluster.core.list_namespaced_config_map(
            cluster.namespace, label_selector=SUITE_SELECTOR, _continue=first.metadata._continue
        ),
        410,
    )
    assert body["reason"] == "Expired"
    assert "continue parameter is too old" in body["message"]
    again = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=SUITE_SELECTOR
    )
    assert [c.metadata.name for c in again.items] == ["c0", "c1", "c2", "c9"]
