"""Conformance of the fake apiserver: one test per Kubernetes behaviour the daemon relies on.

Every test talks to the cluster ONLY through kubernetes_asyncio (CoreV1Api, AppsV1Api,
CoordinationV1Api, watch.Watch, LeaderElection), so the suite runs unchanged against a real
cluster: `OTM_CONFORMANCE_KUBECONFIG=~/.kube/config pytest tests/k8s -k conformance`.
Tests marked `fake_only` drive the fake's control hooks (history compaction, the simulated
kubelet's failure/IP-drift/log injection) and are skipped against a real cluster.

This file: CRUD, lists and selectors, updates and patches, leases, validation. Watches and
deletion are in test_fake_conformance_watch.py; pods run by a kubelet and leader election in
test_fake_conformance_pods.py. Numbered docstrings are the 26 checks of the research
note kubernetes-testing.md, §2.
"""

# kubernetes_asyncio annotates request bodies as models (V1Pod, ...), but takes plain dicts,
# which is how the daemon builds manifests; so dict bodies are not type errors here.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

from tests.k8s.cluster import (
    NO_NODE,
    Cluster,
    configmap,
    configmap_names,
    expect_status,
    labelled_configmaps,
    list_rv,
    merge_patch_configmap,
    pod_manifest,
    unscheduled_pod,
)

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


async def test_list_with_equality_label_selector(cluster: Cluster) -> None:
    """7. labelSelector `=`, `==` and `!=` (the latter also matches objects without the key)."""
    await labelled_configmaps(cluster)
    assert await configmap_names(cluster, label_selector="app=a") == ["a1", "a2"]
    assert await configmap_names(cluster, label_selector="app==b") == ["b1"]
    assert await configmap_names(cluster, label_selector="app!=a") == ["b1", "c1", "n1"]
    assert await configmap_names(cluster, label_selector="app=a,tier=web") == ["a2"]


async def test_list_with_set_based_label_selector(cluster: Cluster) -> None:
    """8. labelSelector `in`, `notin`, `key` and `!key`."""
    await labelled_configmaps(cluster)
    assert await configmap_names(cluster, label_selector="app in (a,b),!tier") == ["a1", "b1"]
    assert await configmap_names(cluster, label_selector="app notin (a, b)") == ["c1", "n1"]
    assert await configmap_names(cluster, label_selector="tier") == ["a2"]
    assert await configmap_names(cluster, label_selector="!app") == ["n1"]


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
    assert patched.metadata.labels["x/y"] == "z"
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
