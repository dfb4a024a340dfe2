"""Conformance: watches (RV semantics, bookmarks, 410, initial events, selectors) and
deletion (graceful pods, finalizers, preconditions, namespaces). See test_fake_conformance.py."""

# kubernetes_asyncio annotates request bodies as models (V1Pod, ...), but takes plain dicts,
# which is how the daemon builds manifests; so dict bodies are not type errors here.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from tests.k8s.cluster import (
    INITIAL_EVENTS_END,
    JSON,
    NO_NODE,
    SUITE_SELECTOR,
    Cluster,
    configmap,
    configmap_events,
    configmap_names,
    configmap_watch_failure,
    expect_status,
    labelled_configmaps,
    list_rv,
    merge_patch_configmap,
    names,
    pod_manifest,
    unscheduled_pod,
    watch_events,
)
from tests.support.polling import eventually

# Watches -----------------------------------------------------------------------------------


async def test_watch_from_list_rv_sees_only_new_events(cluster: Cluster) -> None:
    """11. A watch from a list's RV replays nothing older: only later changes arrive."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("old"))
    rv = await list_rv(cluster)
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("new"))
    events = await configmap_events(
        cluster,
        resource_version=rv,
        until=lambda evs: ("ADDED", "new") in names(evs),
    )
    assert names(events) == [("ADDED", "new")]


async def test_watch_without_resource_version_starts_with_current_state(cluster: Cluster) -> None:
    """A watch without resourceVersion first gets a synthetic ADDED per existing object."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("a"))
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("b"))
    events = await configmap_events(
        cluster,
        label_selector=SUITE_SELECTOR,
        until=lambda evs: len(evs) == 2,
    )
    assert sorted(names(events)) == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_sends_bookmarks_when_allowed(cluster: Cluster) -> None:
    """12. With allowWatchBookmarks a BOOKMARK arrives carrying only a resourceVersion."""
    rv = await list_rv(cluster)
    events = await configmap_events(
        cluster,
        resource_version=rv,
        allow_watch_bookmarks=True,
        until=lambda evs: any(e["type"] == "BOOKMARK" for e in evs),
        patience=cluster.patience if cluster.fake else 120.0,
    )
    mark = events[-1]["raw_object"]
    assert int(mark["metadata"]["resourceVersion"]) >= int(rv)
    assert mark["kind"] == "ConfigMap"


async def test_watch_events_carry_increasing_resource_versions(cluster: Cluster) -> None:
    """13. Events arrive in resourceVersion order, each RV larger than the last."""
    rv = await list_rv(cluster)
    for name in ("x", "y", "z"):
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(name))
    await cluster.core.patch_namespaced_config_map("x", cluster.namespace, {"data": {"k": "w"}})
    events = await configmap_events(
        cluster,
        resource_version=rv,
        until=lambda evs: len(evs) == 4,
    )
    assert names(events) == [("ADDED", "x"), ("ADDED", "y"), ("ADDED", "z"), ("MODIFIED", "x")]
    versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(set(versions))


async def test_watch_honours_label_selector_with_transitions(cluster: Cluster) -> None:
    """14. A selected watch reports an object entering the selector as ADDED and one leaving
    it as DELETED; changes to objects outside it are never seen."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("a", {"app": "a"}))
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("b", {"app": "b"}))
    rv = await list_rv(cluster)
    relabel = cluster.core.patch_namespaced_config_map
    await relabel("b", cluster.namespace, {"metadata": {"labels": {"app": "a"}}})
    await relabel("a", cluster.namespace, {"metadata": {"labels": {"app": "c"}}})
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("o", {"app": "o"}))
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("d", {"app": "a"}))
    events = await configmap_events(
        cluster,
        resource_version=rv,
        label_selector="app=a",
        until=lambda evs: ("ADDED", "d") in names(evs),
    )
    assert names(events) == [("ADDED", "b"), ("DELETED", "a"), ("ADDED", "d")]


@pytest.mark.fake_only
async def test_watch_from_compacted_resource_version_is_410(cluster: Cluster) -> None:
    """15. Watching from an RV older than the compacted history fails with 410 Expired
    (an ERROR event, raised by kubernetes_asyncio as ApiException); the client must re-list."""
    fake = cluster.require_fake()
    rv = await list_rv(cluster)
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("x"))
    fake.compact()
    failure = await configmap_watch_failure(cluster, resource_version=rv)
    assert failure.status == 410
    assert "Expired" in str(failure.reason)


async def test_send_initial_events_ends_with_initial_events_end_bookmark(cluster: Cluster) -> None:
    """16. sendInitialEvents=true (with allowWatchBookmarks and resourceVersionMatch=
    NotOlderThan) streams ADDED for the current state, then a BOOKMARK annotated
    `k8s.io/initial-events-end: "true"`."""
    for name in ("a", "b"):
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(name))

    def ended(events: list[JSON]) -> bool:
        meta = events[-1]["raw_object"]["metadata"]
        return (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true"

    events = await configmap_events(
        cluster,
        label_selector=SUITE_SELECTOR,
        send_initial_events=True,
        allow_watch_bookmarks=True,
        resource_version_match="NotOlderThan",
        until=ended,
    )
    real_events = [e for e in events if e["type"] != "BOOKMARK"]
    assert sorted(names(real_events)) == [("ADDED", "a"), ("ADDED", "b")]
    assert events[-1]["type"] == "BOOKMARK"


async def test_send_initial_events_requires_resource_version_match(cluster: Cluster) -> None:
    """sendInitialEvents without resourceVersionMatch=NotOlderThan is 422 Invalid."""
    failure = await configmap_watch_failure(
        cluster, send_initial_events=True, allow_watch_bookmarks=True
    )
    assert failure.status == 422


async def test_watch_timeout_seconds_ends_the_stream(cluster: Cluster) -> None:
    """`timeoutSeconds` makes the server end a quiet watch cleanly (the iteration stops)."""
    rv = await list_rv(cluster)
    stream = watch.Watch()
    seen = []
    try:
        async with asyncio.timeout(cluster.patience):
            async for event in stream.stream(
                cluster.core.list_namespaced_config_map,
                cluster.namespace,
                resource_version=rv,
                timeout_seconds=1,
            ):
                seen.append(event)
    finally:
        await stream.close()
    assert seen == []


# Deletion ----------------------------------------------------------------------------------


async def test_bound_pod_graceful_delete_then_force(cluster: Cluster) -> None:
    """17. Deleting a pod bound to a node is graceful: it gains deletionTimestamp and
    deletionGracePeriodSeconds (MODIFIED) and stays; a grace-0 delete then removes it."""
    await cluster.core.create_namespaced_pod(
        cluster.namespace, pod_manifest("bound", nodeName=NO_NODE)
    )
    rv = (await cluster.core.list_namespaced_pod(cluster.namespace)).metadata.resource_version
    deleting = await cluster.core.delete_namespaced_pod("bound", cluster.namespace)
    assert deleting.metadata.deletion_timestamp is not None
    still = await cluster.core.read_namespaced_pod("bound", cluster.namespace)
    assert still.metadata.deletion_grace_period_seconds == 30
    await cluster.core.delete_namespaced_pod("bound", cluster.namespace, grace_period_seconds=0)
    await expect_status(cluster.core.read_namespaced_pod("bound", cluster.namespace), 404)
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=rv,
        until=lambda evs: evs[-1]["type"] == "DELETED",
        patience=cluster.patience,
    )
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["raw_object"]["metadata"]["deletionTimestamp"]


async def test_unbound_pod_is_deleted_at_once(cluster: Cluster) -> None:
    """18. A pod no kubelet runs (unscheduled) is removed immediately, whatever the grace."""
    await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("free"))
    await cluster.core.delete_namespaced_pod("free", cluster.namespace, grace_period_seconds=30)
    await expect_status(cluster.core.read_namespaced_pod("free", cluster.namespace), 404)


async def test_finalizer_holds_deletion(cluster: Cluster) -> None:
    """19. A finalizer keeps a deleted object (with deletionTimestamp) until it is removed;
    new finalizers cannot be added meanwhile."""
    held = configmap("held", finalizers=["otm.dev/hold"])
    await cluster.core.create_namespaced_config_map(cluster.namespace, held)
    await cluster.core.delete_namespaced_config_map("held", cluster.namespace)
    pending = await cluster.core.read_namespaced_config_map("held", cluster.namespace)
    assert pending.metadata.deletion_timestamp is not None
    await expect_status(
        merge_patch_configmap(
            cluster,
            cluster.namespace,
            "held",
            {"metadata": {"finalizers": ["otm.dev/hold", "otm.dev/more"]}},
        ),
        422,
    )
    await cluster.core.patch_namespaced_config_map(
        "held", cluster.namespace, [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    await expect_status(cluster.core.read_namespaced_config_map("held", cluster.namespace), 404)


async def test_delete_precondition_on_resource_version(cluster: Cluster) -> None:
    """DeleteOptions.preconditions.resourceVersion must match, else 409 Conflict."""
    created = await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("x"))
    await cluster.core.patch_namespaced_config_map("x", cluster.namespace, {"data": {"k": "2"}})
    stale = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=created.metadata.resource_version)
    )
    body = await expect_status(
        cluster.core.delete_namespaced_config_map("x", cluster.namespace, body=stale), 409
    )
    assert body["reason"] == "Conflict"


async def test_delete_collection_by_label_selector(cluster: Cluster) -> None:
    """deletecollection removes exactly the objects its label selector matches."""
    await labelled_configmaps(cluster)
    await cluster.core.delete_collection_namespaced_config_map(
        cluster.namespace, label_selector="app in (a,b)"
    )
    assert await configmap_names(cluster, label_selector="") == ["c1", "n1"]


async def test_namespace_deletion_removes_its_contents(cluster: Cluster) -> None:
    """Deleting a namespace makes it Terminating (creating in it is then 403 Forbidden),
    deletes its objects, and removes the namespace once the last one (here held by a
    finalizer) is gone."""
    name = f"{cluster.namespace}-gone"
    await cluster.core.create_namespace({"metadata": {"name": name}})
    await cluster.core.create_namespaced_config_map(name, configmap("x"))
    await cluster.core.create_namespaced_config_map(name, configmap("held", finalizers=["a/b"]))
    selector = f"metadata.name={name}"
    rv = (await cluster.core.list_namespace(field_selector=selector)).metadata.resource_version
    await cluster.core.delete_namespace(name)
    terminating = await cluster.core.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    body = await expect_status(cluster.core.create_namespaced_config_map(name, configmap("y")), 403)
    assert body["reason"] == "Forbidden"
    patience = cluster.patience if cluster.fake else 120.0
    await watch_events(
        cluster.core.list_namespaced_config_map,
        name,
        resource_version=rv,
        until=lambda evs: ("DELETED", "x") in names(evs),
        patience=patience,
    )
    await merge_patch_configmap(cluster, name, "held", {"metadata": {"finalizers": None}})
    events = await watch_events(
        cluster.core.list_namespace,
        field_selector=selector,
        resource_version=rv,
        until=lambda evs: evs[-1]["type"] == "DELETED",
        patience=patience,
    )
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["raw_object"]["status"]["phase"] == "Terminating"


# Garbage collection ------------------------------------------------------------------------


def _owned_by(*owners: Any) -> JSON:
    return {
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": o.metadata.name, "uid": o.metadata.uid}
            for o in owners
        ]
    }


async def _gone(cluster: Cluster, name: str) -> bool:
    try:
        await cluster.core.read_namespaced_config_map(name, cluster.namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


async def test_dependents_are_collected_when_their_owner_is_deleted(cluster: Cluster) -> None:
    """The garbage collector deletes an object whose only owner is gone (background
    propagation), and keeps one with another live owner, minus the dead reference."""
    first = await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("a"))
    second = await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("b"))
    await cluster.core.create_namespaced_config_map(
        cluster.namespace, configmap("only-a", **_owned_by(first))
    )
    await cluster.core.create_namespaced_config_map(
        cluster.namespace, configmap("a-and-b", **_owned_by(first, second))
    )
    await cluster.core.delete_namespaced_pod("a", cluster.namespace)  # unbound: gone at once
    patience = cluster.patience if cluster.fake else 60.0

    async def only_second_owns_the_shared_one() -> bool:
        kept = await cluster.core.read_namespaced_config_map("a-and-b", cluster.namespace)
        return [r.uid for r in kept.metadata.owner_references] == [second.metadata.uid]

    await eventually(lambda: _gone(cluster, "only-a"), timeout=patience, what="collected")
    await eventually(only_second_owns_the_shared_one, timeout=patience, what="reference cut")
