"""Conformance of the fake apiserver: one test per Kubernetes behaviour the daemon relies on.

Every test talks to the cluster ONLY through kubernetes_asyncio (CoreV1Api, AppsV1Api,
CoordinationV1Api, watch.Watch, LeaderElection), so the suite runs unchanged against a real
cluster: `OTM_CONFORMANCE_KUBECONFIG=~/.kube/config pytest tests/k8s/test_fake_conformance.py`.
Tests marked `fake_only` drive the fake's control hooks (history compaction, the simulated
kubelet's failure/IP-drift/log injection) and are skipped against a real cluster.
"""

# kubernetes_asyncio annotates request bodies as models (V1Pod, ...), but takes plain dicts,
# which is how the daemon builds manifests; so dict bodies are not type errors here.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from tests.k8s.cluster import NO_NODE, NO_SCHEDULER, Cluster, names, pod_manifest, watch_events

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


async def expect_status(call: Any, code: int) -> JSON:
    """Await an API call that must fail with `code`; return its Status body."""
    with pytest.raises(client.ApiException) as failure:
        await call
    assert failure.value.status == code
    body: JSON = json.loads(failure.value.body or b"{}")
    assert body["kind"] == "Status" and body["code"] == code
    return body


def configmap(name: str, labels: dict[str, str] | None = None, **extra: Any) -> JSON:
    return {"metadata": {"name": name, "labels": labels or {}, **extra}, "data": {"k": "v"}}


def unscheduled_pod(name: str, **kwargs: Any) -> JSON:
    """A pod no scheduler picks up: it stays unbound and Pending on any cluster."""
    return pod_manifest(name, schedulerName=NO_SCHEDULER, **kwargs)


async def merge_patch_configmap(
    cluster: Cluster, namespace: str, name: str, patch: JSON
) -> client.V1ConfigMap:
    """PATCH as application/merge-patch+json (a dict body is otherwise sent as strategic
    merge; kubernetes_asyncio's annotations omit its `_content_type` keyword)."""
    return await cluster.core.patch_namespaced_config_map(  # type: ignore[call-arg]
        name, namespace, patch, _content_type=MERGE_PATCH
    )


async def list_rv(cluster: Cluster) -> str:
    listed = await cluster.core.list_namespaced_config_map(cluster.namespace)
    return str(listed.metadata.resource_version)


# CRUD basics ------------------------------------------------------------------------------


async def test_create_namespace(cluster: Cluster) -> None:
    """1. A namespace can be created, reads back Active, and is listed."""
    created = await cluster.core.create_namespace({"metadata": {"name": f"{cluster.namespace}-x"}})
    try:
        assert created.status.phase == "Active"
        read = await cluster.core.read_namespace(created.metadata.name)
        assert read.metadata.uid == created.metadata.uid
    finally:
        await cluster.core.delete_namespace(created.metadata.name)


async def test_create_sets_uid_resource_version_and_creation_timestamp(cluster: Cluster) -> None:
    """2. The server fills uid, resourceVersion, creationTimestamp and pod defaults."""
    pod = await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("p"))
    assert pod.metadata.uid and pod.metadata.resource_version
    assert pod.metadata.creation_timestamp is not None
    assert pod.metadata.namespace == cluster.namespace
    assert pod.status.phase == "Pending"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.restart_policy == "Always"


async def test_duplicate_create_is_409_already_exists(cluster: Cluster) -> None:
    """3. Creating an existing name fails with 409 AlreadyExists."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("dup"))
    body = await expect_status(
        cluster.core.create_namespaced_config_map(cluster.namespace, configmap("dup")), 409
    )
    assert body["reason"] == "AlreadyExists"
    assert body["details"]["name"] == "dup"


async def test_read_missing_is_404(cluster: Cluster) -> None:
    """4. Reading a missing object fails with 404 NotFound and names the object."""
    body = await expect_status(cluster.core.read_namespaced_pod("nope", cluster.namespace), 404)
    assert body["reason"] == "NotFound"
    assert body["details"] == {"name": "nope", "kind": "pods"}


async def test_delete_missing_is_404(cluster: Cluster) -> None:
    """5. Deleting a missing object fails with 404 NotFound."""
    body = await expect_status(
        cluster.core.delete_namespaced_secret("nope", cluster.namespace), 404
    )
    assert body["reason"] == "NotFound"


async def test_generate_name_assigns_a_name(cluster: Cluster) -> None:
    """6. generateName gets a server-chosen 5-character suffix; two creates never collide."""
    first = await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("gen-"))
    second = await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("gen-"))
    for pod in (first, second):
        assert pod.metadata.name.startswith("gen-") and len(pod.metadata.name) == 9
        assert pod.metadata.generate_name == "gen-"
    assert first.metadata.name != second.metadata.name


async def test_secret_string_data_is_folded_into_data(cluster: Cluster) -> None:
    """Secret `stringData` is write-only: it is stored base64-encoded under `data`."""
    body = {"metadata": {"name": "s"}, "stringData": {"token": "hunter2"}}
    secret = await cluster.core.create_namespaced_secret(cluster.namespace, body)
    assert secret.data == {"token": "aHVudGVyMg=="}
    assert secret.string_data is None
    assert secret.type == "Opaque"


async def test_deployment_crud_through_apps_v1(cluster: Cluster) -> None:
    """apps/v1 Deployments: create (defaults filled), list by label, patch, delete."""
    labels = {"app": "web"}
    body = {
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_manifest()["spec"]},
        },
    }
    created = await cluster.apps.create_namespaced_deployment(cluster.namespace, body)
    assert created.spec.replicas == 1 and created.metadata.generation == 1
    listed = await cluster.apps.list_namespaced_deployment(cluster.namespace, label_selector="app")
    assert [d.metadata.name for d in listed.items] == ["web"]
    patched = await cluster.apps.patch_namespaced_deployment(
        "web", cluster.namespace, {"spec": {"replicas": 3}}
    )
    assert patched.spec.replicas == 3 and patched.metadata.generation == 2
    await cluster.apps.delete_namespaced_deployment("web", cluster.namespace)
    await expect_status(cluster.apps.read_namespaced_deployment("web", cluster.namespace), 404)


async def test_events_are_accepted_and_listed(cluster: Cluster) -> None:
    """core/v1 Events can be created and listed by involvedObject field selectors."""
    event = {
        "metadata": {"name": "p.1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": cluster.namespace},
        "reason": "Testing",
        "message": "hello",
        "type": "Normal",
    }
    await cluster.core.create_namespaced_event(cluster.namespace, event)
    listed = await cluster.core.list_namespaced_event(
        cluster.namespace, field_selector="involvedObject.name=p,reason=Testing"
    )
    assert [e.message for e in listed.items] == ["hello"]


# Lists and selectors -----------------------------------------------------------------------


async def _labelled_configmaps(cluster: Cluster) -> None:
    for name, labels in [
        ("a1", {"app": "a"}),
        ("a2", {"app": "a", "tier": "web"}),
        ("b1", {"app": "b"}),
        ("c1", {"app": "c"}),
        ("n1", {}),
    ]:
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(name, labels))


async def _names(cluster: Cluster, label_selector: str) -> list[str]:
    listed = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=label_selector
    )
    return sorted(item.metadata.name for item in listed.items)


async def test_list_with_equality_label_selector(cluster: Cluster) -> None:
    """7. labelSelector `=`, `==` and `!=` (the latter also matches objects without the key)."""
    await _labelled_configmaps(cluster)
    assert await _names(cluster, label_selector="app=a") == ["a1", "a2"]
    assert await _names(cluster, label_selector="app==b") == ["b1"]
    assert await _names(cluster, label_selector="app!=a") == ["b1", "c1", "n1"]
    assert await _names(cluster, label_selector="app=a,tier=web") == ["a2"]


async def test_list_with_set_based_label_selector(cluster: Cluster) -> None:
    """8. labelSelector `in`, `notin`, `key` and `!key`."""
    await _labelled_configmaps(cluster)
    assert await _names(cluster, label_selector="app in (a,b),!tier") == ["a1", "b1"]
    assert await _names(cluster, label_selector="app notin (a, b)") == ["c1", "n1"]
    assert await _names(cluster, label_selector="tier") == ["a2"]
    assert await _names(cluster, label_selector="!app") == ["n1"]


async def test_malformed_label_selector_is_400(cluster: Cluster) -> None:
    """A selector that does not parse is rejected with 400 BadRequest."""
    body = await expect_status(
        cluster.core.list_namespaced_config_map(cluster.namespace, label_selector="app in (a"),
        400,
    )
    assert body["reason"] == "BadRequest"


async def test_list_with_field_selector(cluster: Cluster) -> None:
    """9. fieldSelector on metadata.name, spec.nodeName and status.phase (`=` and `!=`)."""
    await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("p1"))
    await cluster.core.create_namespaced_pod(
        cluster.namespace, pod_manifest("p2", nodeName=NO_NODE)
    )

    async def pods(selector: str) -> list[str]:
        listed = await cluster.core.list_namespaced_pod(cluster.namespace, field_selector=selector)
        return sorted(p.metadata.name for p in listed.items)

    assert await pods("metadata.name=p2") == ["p2"]
    assert await pods(f"spec.nodeName={NO_NODE}") == ["p2"]
    assert await pods("spec.nodeName=") == ["p1"]
    assert await pods("status.phase=Pending,metadata.name!=p2") == ["p1"]


async def test_unsupported_field_selector_is_400(cluster: Cluster) -> None:
    """Only the fields a type indexes are selectable; others are 400 BadRequest."""
    body = await expect_status(
        cluster.core.list_namespaced_pod(cluster.namespace, field_selector="spec.hostname=x"),
        400,
    )
    assert "field label not supported" in body["message"]


async def test_list_returns_resource_version(cluster: Cluster) -> None:
    """10. A list carries metadata.resourceVersion; it advances after a write."""
    before = await list_rv(cluster)
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("x"))
    after = await list_rv(cluster)
    assert before and after and int(after) > int(before)


async def test_list_pages_with_limit_and_continue(cluster: Cluster) -> None:
    """`limit` returns a page plus a `continue` token that yields the rest, in order."""
    for i in range(5):
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(f"c{i}"))
    first = await cluster.core.list_namespaced_config_map(cluster.namespace, limit=2)
    assert [c.metadata.name for c in first.items] == ["c0", "c1"]
    assert first.metadata._continue
    rest = await cluster.core.list_namespaced_config_map(
        cluster.namespace, limit=10, _continue=first.metadata._continue
    )
    assert [c.metadata.name for c in rest.items] == ["c2", "c3", "c4"]
    assert not rest.metadata._continue


async def test_list_across_all_namespaces(cluster: Cluster) -> None:
    """A namespaced type can be listed across namespaces (`/api/v1/configmaps`)."""
    label = {"otm-conformance": cluster.namespace}
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("x", label))
    listed = await cluster.core.list_config_map_for_all_namespaces(
        label_selector=f"otm-conformance={cluster.namespace}"
    )
    assert [(c.metadata.namespace, c.metadata.name) for c in listed.items] == [
        (cluster.namespace, "x")
    ]


# Watches -----------------------------------------------------------------------------------


async def test_watch_from_list_rv_sees_only_new_events(cluster: Cluster) -> None:
    """11. A watch from a list's RV replays nothing older: only later changes arrive."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("old"))
    rv = await list_rv(cluster)
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("new"))
    events = await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
        resource_version=rv,
        until=lambda evs: ("ADDED", "new") in names(evs),
        patience=cluster.patience,
    )
    assert names(events) == [("ADDED", "new")]


async def test_watch_without_resource_version_starts_with_current_state(cluster: Cluster) -> None:
    """A watch without resourceVersion first gets a synthetic ADDED per existing object."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("a"))
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("b"))
    events = await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
        until=lambda evs: len(evs) == 2,
        patience=cluster.patience,
    )
    assert sorted(names(events)) == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_sends_bookmarks_when_allowed(cluster: Cluster) -> None:
    """12. With allowWatchBookmarks a BOOKMARK arrives carrying only a resourceVersion."""
    rv = await list_rv(cluster)
    events = await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
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
    events = await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
        resource_version=rv,
        until=lambda evs: len(evs) == 4,
        patience=cluster.patience,
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
    events = await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
        resource_version=rv,
        label_selector="app=a",
        until=lambda evs: ("ADDED", "d") in names(evs),
        patience=cluster.patience,
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
    stream = watch.Watch()
    try:
        with pytest.raises(client.ApiException) as failure:
            async with asyncio.timeout(cluster.patience):
                async for _ in stream.stream(
                    cluster.core.list_namespaced_config_map,
                    cluster.namespace,
                    resource_version=rv,
                    timeout_seconds=5,
                ):
                    pass
    finally:
        await stream.close()
    assert failure.value.status == 410
    assert "Expired" in str(failure.value.reason)


async def test_send_initial_events_ends_with_initial_events_end_bookmark(cluster: Cluster) -> None:
    """16. sendInitialEvents=true (with allowWatchBookmarks and resourceVersionMatch=
    NotOlderThan) streams ADDED for the current state, then a BOOKMARK annotated
    `k8s.io/initial-events-end: "true"`."""
    for name in ("a", "b"):
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(name))

    def ended(events: list[JSON]) -> bool:
        meta = events[-1]["raw_object"]["metadata"]
        return (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true"

    events = await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
        send_initial_events=True,
        allow_watch_bookmarks=True,
        resource_version_match="NotOlderThan",
        until=ended,
        patience=cluster.patience,
    )
    real_events = [e for e in events if e["type"] != "BOOKMARK"]
    assert sorted(names(real_events)) == [("ADDED", "a"), ("ADDED", "b")]
    assert events[-1]["type"] == "BOOKMARK"


async def test_send_initial_events_requires_resource_version_match(cluster: Cluster) -> None:
    """sendInitialEvents without resourceVersionMatch=NotOlderThan is 422 Invalid."""
    stream = watch.Watch()
    try:
        with pytest.raises(client.ApiException) as failure:
            async for _ in stream.stream(
                cluster.core.list_namespaced_config_map,
                cluster.namespace,
                send_initial_events=True,
                allow_watch_bookmarks=True,
                timeout_seconds=5,
            ):
                pass
    finally:
        await stream.close()
    assert failure.value.status == 422


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


# Updates and patches -----------------------------------------------------------------------


async def test_patch_labels_with_strategic_merge(cluster: Cluster) -> None:
    """20. A dict PATCH (sent as strategic-merge-patch+json) merges labels; null deletes."""
    pod = unscheduled_pod("p", labels={"app": "a", "tier": "web"})
    created = await cluster.core.create_namespaced_pod(cluster.namespace, pod)
    patched = await cluster.core.patch_namespaced_pod(
        "p", cluster.namespace, {"metadata": {"labels": {"tier": None, "otm/warm": "true"}}}
    )
    assert patched.metadata.labels == {"app": "a", "otm/warm": "true"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)


async def test_merge_patch_replaces_lists(cluster: Cluster) -> None:
    """A JSON merge patch replaces lists whole and deletes keys set to null."""
    body = configmap("m", finalizers=["a/x", "a/y"])
    body["data"] = {"k": "v", "gone": "soon"}
    await cluster.core.create_namespaced_config_map(cluster.namespace, body)
    patched = await merge_patch_configmap(
        cluster,
        cluster.namespace,
        "m",
        {"metadata": {"finalizers": ["a/z"]}, "data": {"gone": None}},
    )
    assert patched.metadata.finalizers == ["a/z"]
    assert patched.data == {"k": "v"}
    await merge_patch_configmap(cluster, cluster.namespace, "m", {"metadata": {"finalizers": None}})


async def test_json_patch_operations(cluster: Cluster) -> None:
    """A list PATCH (json-patch+json) applies add/replace/remove; a failed `test` is 422."""
    await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("j"))
    patched = await cluster.core.patch_namespaced_config_map(
        "j",
        cluster.namespace,
        [
            {"op": "test", "path": "/data/k", "value": "v"},
            {"op": "add", "path": "/data/n", "value": "1"},
            {"op": "replace", "path": "/data/k", "value": "w"},
            {"op": "add", "path": "/metadata/labels/x~1y", "value": "z"},
        ],
    )
    assert patched.data == {"k": "w", "n": "1"}
    assert patched.metadata.labels == {"x/y": "z"}
    failed_test = [{"op": "test", "path": "/data/k", "value": "not-this"}]
    await expect_status(
        cluster.core.patch_namespaced_config_map("j", cluster.namespace, failed_test), 422
    )


async def test_patch_pod_status_subresource(cluster: Cluster) -> None:
    """21. `pods/status` changes the status; writes to the pod itself leave status alone."""
    await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("s"))
    status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    patched = await cluster.core.patch_namespaced_pod_status("s", cluster.namespace, status)
    assert patched.status.phase == "Running"
    assert [(c.type, c.status) for c in patched.status.conditions] == [("Ready", "True")]
    ignored = await cluster.core.patch_namespaced_pod(
        "s", cluster.namespace, {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}}
    )
    assert ignored.status.phase == "Running"
    assert ignored.metadata.labels == {"x": "y"}


async def test_pod_spec_update_is_forbidden(cluster: Cluster) -> None:
    """Pod specs are immutable apart from images and a few fields: 422 Invalid."""
    await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("im"))
    body = await expect_status(
        cluster.core.patch_namespaced_pod(
            "im", cluster.namespace, {"spec": {"restartPolicy": "Never"}}
        ),
        422,
    )
    assert body["reason"] == "Invalid"


async def test_no_op_update_keeps_resource_version(cluster: Cluster) -> None:
    """Writing an object unchanged does not bump its resourceVersion (and emits no event)."""
    created = await cluster.core.create_namespaced_config_map(cluster.namespace, configmap("n"))
    same = await cluster.core.replace_namespaced_config_map("n", cluster.namespace, created)
    assert same.metadata.resource_version == created.metadata.resource_version


async def test_lease_create(cluster: Cluster) -> None:
    """22. coordination.k8s.io/v1 Leases can be created and read back."""
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    created = await cluster.coordination.create_namespaced_lease(cluster.namespace, lease)
    read = await cluster.coordination.read_namespaced_lease("l", cluster.namespace)
    assert read.spec.holder_identity == "a"
    assert read.metadata.resource_version == created.metadata.resource_version


async def test_lease_replace_with_current_resource_version(cluster: Cluster) -> None:
    """23. PUT with the current resourceVersion succeeds and bumps it."""
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    current = await cluster.coordination.create_namespaced_lease(cluster.namespace, lease)
    current.spec.holder_identity = "b"
    replaced = await cluster.coordination.replace_namespaced_lease("l", cluster.namespace, current)
    assert replaced.spec.holder_identity == "b"
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)


async def test_lease_replace_with_stale_resource_version_is_409(cluster: Cluster) -> None:
    """24. PUT with a stale resourceVersion fails with 409 Conflict (optimistic locking)."""
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    stale = await cluster.coordination.create_namespaced_lease(cluster.namespace, lease)
    fresh = await cluster.coordination.read_namespaced_lease("l", cluster.namespace)
    fresh.spec.holder_identity = "b"
    await cluster.coordination.replace_namespaced_lease("l", cluster.namespace, fresh)
    stale.spec.holder_identity = "c"
    body = await expect_status(
        cluster.coordination.replace_namespaced_lease("l", cluster.namespace, stale), 409
    )
    assert body["reason"] == "Conflict"
    read = await cluster.coordination.read_namespaced_lease("l", cluster.namespace)
    assert read.spec.holder_identity == "b"


# Validation --------------------------------------------------------------------------------


async def test_invalid_pod_is_422(cluster: Cluster) -> None:
    """25. A pod without containers, or with a container lacking an image, is 422 Invalid
    with a cause naming the field."""
    no_containers = {"metadata": {"name": "bad"}, "spec": {"containers": []}}
    body = await expect_status(
        cluster.core.create_namespaced_pod(cluster.namespace, no_containers), 422
    )
    assert body["reason"] == "Invalid"
    assert "spec.containers" in [c["field"] for c in body["details"]["causes"]]
    no_image = {"metadata": {"name": "bad"}, "spec": {"containers": [{"name": "c"}]}}
    body = await expect_status(cluster.core.create_namespaced_pod(cluster.namespace, no_image), 422)
    assert "spec.containers[0].image" in [c["field"] for c in body["details"]["causes"]]


async def test_invalid_names_and_labels_are_422(cluster: Cluster) -> None:
    """Names must be DNS-1123 (subdomain for most types), label values valid: 422 Invalid."""
    await expect_status(
        cluster.core.create_namespaced_config_map(cluster.namespace, configmap("Bad_Name")), 422
    )
    await expect_status(
        cluster.core.create_namespaced_config_map(
            cluster.namespace, configmap("ok", {"app": "not valid!"})
        ),
        422,
    )
    await expect_status(cluster.core.create_namespace({"metadata": {"name": "a.b"}}), 422)


async def test_create_in_missing_namespace_is_404(cluster: Cluster) -> None:
    """26. Creating in a namespace that does not exist is 404 naming the namespace."""
    body = await expect_status(
        cluster.core.create_namespaced_config_map(f"{cluster.namespace}-none", configmap("x")),
        404,
    )
    assert body["details"]["kind"] == "namespaces"


# Leader election ---------------------------------------------------------------------------


async def test_leader_election_fails_over_between_two_candidates(cluster: Cluster) -> None:
    """kubernetes_asyncio's stock LeaderElection + LeaseLock: `a` leads while it renews;
    when `a` stops renewing (a crash, no release), `b` takes the lease after it expires."""
    leading = {"a": asyncio.Event(), "b": asyncio.Event()}

    def candidate(identity: str) -> asyncio.Task[None]:
        lock = LeaseLock("otm-conformance-leader", cluster.namespace, identity, cluster.api)

        async def on_started() -> None:
            leading[identity].set()

        async def on_stopped() -> None:
            leading[identity].clear()

        config = electionconfig.Config(
            lock,
            lease_duration=3,
            renew_deadline=2,
            retry_period=1,
            onstarted_leading=on_started,
            onstopped_leading=on_stopped,
        )
        election = leaderelection.LeaderElection(config)
        return asyncio.create_task(election.run(), name=f"conformance-election-{identity}")

    tasks = [candidate("a")]
    try:
        await asyncio.wait_for(leading["a"].wait(), cluster.patience + 5)
        tasks.append(candidate("b"))
        await asyncio.sleep(2)  # b polls twice while a renews: it must stay a follower
        assert not leading["b"].is_set()
        tasks[0].cancel()
        await asyncio.wait_for(leading["b"].wait(), cluster.patience + 10)
        lease = await cluster.coordination.read_namespaced_lease(
            "otm-conformance-leader", cluster.namespace
        )
        assert lease.spec.holder_identity == "b"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# Pods run by a kubelet ---------------------------------------------------------------------


def _phase_and_ready(event: JSON) -> tuple[str, bool]:
    status = event["raw_object"].get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase", ""), ready


def _running_and_ready(events: list[JSON]) -> bool:
    return _phase_and_ready(events[-1]) == ("Running", True)


async def _running_pod(cluster: Cluster, name: str) -> JSON:
    """Create a pod and wait (through a watch) until it is Running and Ready."""
    created = await cluster.core.create_namespaced_pod(cluster.namespace, pod_manifest(name))
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        field_selector=f"metadata.name={name}",
        resource_version=created.metadata.resource_version,
        until=_running_and_ready,
        patience=cluster.patience if cluster.fake else 120.0,
    )
    pod: JSON = events[-1]["raw_object"]
    return pod


async def test_kubelet_schedules_and_runs_a_pod(cluster: Cluster) -> None:
    """A new pod is bound to a node (spec.nodeName, PodScheduled), then goes Pending →
    Running with a podIP and Ready=True; its phase never goes backwards."""
    created = await cluster.core.create_namespaced_pod(cluster.namespace, pod_manifest("run"))
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=created.metadata.resource_version,
        until=_running_and_ready,
        patience=cluster.patience if cluster.fake else 120.0,
    )
    phases = [_phase_and_ready(e)[0] for e in events]
    assert set(phases) <= {"Pending", "Running"}
    assert phases == sorted(phases, key=["Pending", "Running"].index)
    pod = events[-1]["raw_object"]
    assert pod["spec"]["nodeName"]
    assert pod["status"]["podIP"] and pod["status"]["hostIP"]
    condition_types = {c["type"] for c in pod["status"]["conditions"]}
    assert {"PodScheduled", "Initialized", "ContainersReady", "Ready"} <= condition_types
    [container] = pod["status"]["containerStatuses"]
    assert container["ready"] is True and "running" in container["state"]


async def test_graceful_delete_of_a_running_pod_is_finished_by_the_kubelet(
    cluster: Cluster,
) -> None:
    """Deleting a running pod: MODIFIED with deletionTimestamp, the kubelet stops the
    containers, then DELETED, well before the 30 s grace period runs out."""
    pod = await _running_pod(cluster, "stop-me")
    await cluster.core.delete_namespaced_pod("stop-me", cluster.namespace)
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=pod["metadata"]["resourceVersion"],
        until=lambda evs: evs[-1]["type"] == "DELETED",
        patience=cluster.patience if cluster.fake else 60.0,
    )
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["raw_object"]["metadata"]["deletionTimestamp"]


@pytest.mark.fake_only
async def test_pod_failure_is_seen_through_a_watch(cluster: Cluster) -> None:
    """A container that dies makes the pod Failed with a terminated container status
    (exit code and reason), Ready=False: a watcher sees it as one MODIFIED event."""
    fake = cluster.require_fake()
    pod = await _running_pod(cluster, "doomed")
    await fake.fail_pod(cluster.namespace, "doomed", exit_code=137, reason="OOMKilled")
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=pod["metadata"]["resourceVersion"],
        until=lambda evs: _phase_and_ready(evs[-1])[0] == "Failed",
        patience=cluster.patience,
    )
    assert _phase_and_ready(events[-1]) == ("Failed", False)
    [container] = events[-1]["raw_object"]["status"]["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


@pytest.mark.fake_only
async def test_ip_drift_is_seen_through_a_watch(cluster: Cluster) -> None:
    """Kata SandboxChanged: the pod turns not-Ready, restarts its containers and comes back
    Ready with a different podIP; a SandboxChanged Event is recorded."""
    fake = cluster.require_fake()
    pod = await _running_pod(cluster, "drifter")
    old_ip = pod["status"]["podIP"]
    await fake.sandbox_changed(cluster.namespace, "drifter")
    events = await watch_events(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        resource_version=pod["metadata"]["resourceVersion"],
        until=_running_and_ready,
        patience=cluster.patience,
    )
    assert _phase_and_ready(events[0]) == ("Running", False)
    new_status = events[-1]["raw_object"]["status"]
    assert new_status["podIP"] != old_ip
    assert new_status["containerStatuses"][0]["restartCount"] == 1
    recorded = await cluster.core.list_namespaced_event(
        cluster.namespace, field_selector="involvedObject.name=drifter"
    )
    assert [e.reason for e in recorded.items] == ["SandboxChanged"]


@pytest.mark.fake_only
async def test_read_pod_log(cluster: Cluster) -> None:
    """`pods/log` returns the container's output; `tailLines` keeps the last lines; a pod
    whose container has not started answers 400."""
    fake = cluster.require_fake()
    await _running_pod(cluster, "talker")
    fake.append_pod_log(cluster.namespace, "talker", "one\ntwo\nthree\n")
    text = await cluster.core.read_namespaced_pod_log("talker", cluster.namespace)
    assert text == "one\ntwo\nthree\n"
    tail = await cluster.core.read_namespaced_pod_log("talker", cluster.namespace, tail_lines=1)
    assert tail == "three\n"
    await cluster.core.create_namespaced_pod(cluster.namespace, unscheduled_pod("waiting"))
    await expect_status(cluster.core.read_namespaced_pod_log("waiting", cluster.namespace), 400)


@pytest.mark.fake_only
async def test_follow_pod_log_streams_until_the_container_ends(cluster: Cluster) -> None:
    """`follow=true` streams existing then new output, and ends when the container stops."""
    fake = cluster.require_fake()
    await _running_pod(cluster, "streamer")
    fake.append_pod_log(cluster.namespace, "streamer", "first\n")
    lines = []
    stream = watch.Watch()
    try:
        async with asyncio.timeout(cluster.patience):
            async for line in stream.stream(
                cluster.core.read_namespaced_pod_log, "streamer", cluster.namespace
            ):
                lines.append(line)
                if line == "first\n":
                    fake.append_pod_log(cluster.namespace, "streamer", "second\n")
                elif line == "second\n":
                    await fake.fail_pod(cluster.namespace, "streamer")
    finally:
        await stream.close()
    assert lines == ["first\n", "second\n"]
