"""RBAC in the fake apiserver (rbac.py): users by bearer token, Roles/ClusterRoles and
bindings matched as the RBAC authorizer does, 403s shaped as a real apiserver's, and the
record of served requests. Fake-only: it authorizes from manifests given at start (it does
not serve rbac.authorization.k8s.io), so these tests do not run against a real cluster."""

# mypy: disable-error-code="arg-type"
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from tests.support.fake_k8s.fixture import FakeK8s, kubeconfig_api_client, running_fake_k8s
from tests.support.fake_k8s.rbac import RbacPolicy, request_attributes, service_account_user

SA = service_account_user("sys", "robot")
RBAC = "rbac.authorization.k8s.io/v1"


def role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None) -> Any:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": rules}


def binding(kind: str, role_kind: str, name: str, namespace: str | None = None) -> Any:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "sys"}],
    }


POLICY = [
    role(
        "Role",
        "work",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["mine"],
                "verbs": ["get", "delete"],
            },
        ],
        namespace="work",
    ),
    binding("RoleBinding", "Role", "work", namespace="work"),
    role(
        "ClusterRole",
        "read-namespaces",
        [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        ],
    ),
    binding("ClusterRoleBinding", "ClusterRole", "read-namespaces"),
    # A ClusterRole bound by a RoleBinding: its rules hold in that namespace only, so the
    # cluster-scoped nodes it names are not granted (and "work" may read itself).
    role(
        "ClusterRole",
        "nodes-and-namespaces",
        [{"apiGroups": [""], "resources": ["nodes", "namespaces"], "verbs": ["get"]}],
    ),
    binding("RoleBinding", "ClusterRole", "nodes-and-namespaces", namespace="work"),
]


@pytest_asyncio.fixture
async def k8s(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    async with running_fake_k8s(
        tmp_path,
        namespaces=("default", "work", "other"),
        rbac=RbacPolicy(POLICY),
        kubeconfig_user=SA,
    ) as fake:
        yield fake


def pod(name: str) -> Any:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


async def forbidden(call: Any) -> dict[str, Any]:
    with pytest.raises(client.ApiException) as caught:
        await call
    assert caught.value.status == 403
    body: dict[str, Any] = json.loads(caught.value.body)
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    return body


async def test_a_service_account_gets_what_its_role_grants_and_403_otherwise(k8s: FakeK8s) -> None:
    async with kubeconfig_api_client(k8s.kubeconfig_path) as api:
        core = client.CoreV1Api(api)
        await core.create_namespaced_pod("work", pod("p"))
        await core.read_namespaced_pod("p", "work")
        await core.list_namespaced_pod("work")
        body = await forbidden(core.delete_namespaced_pod("p", "work"))
        assert body["message"] == (
            f'pods "p" is forbidden: User "{SA}" cannot delete resource "pods" in API group ""'
            ' in the namespace "work"'
        )
        assert body["details"] == {"name": "p", "group": "", "kind": "pods"}
        # A Role is namespaced: the same verbs elsewhere are denied.
        body = await forbidden(core.list_namespaced_pod("other"))
        assert body["message"] == (
            f'pods is forbidden: User "{SA}" cannot list resource "pods" in API group ""'
            ' in the namespace "other"'
        )
        # watch is its own verb.
        await forbidden(core.list_namespaced_pod("work", watch=True, timeout_seconds=1))


async def test_subresources_resource_names_and_cluster_roles(k8s: FakeK8s) -> None:
    async with k8s.api_client() as admin:  # the admin is in system:masters
        admin_core = client.CoreV1Api(admin)
        for name in ("mine", "theirs"):
            await admin_core.create_namespaced_config_map("work", {"metadata": {"name": name}})
        await admin_core.create_namespaced_pod("work", pod("p"))
    async with kubeconfig_api_client(k8s.kubeconfig_path) as api:
        core = client.CoreV1Api(api)
        await core.read_namespaced_config_map("mine", "work")
        await forbidden(core.read_namespaced_config_map("theirs", "work"))
        await forbidden(core.list_namespaced_config_map("work"))  # no name: no resourceNames
        await forbidden(core.patch_namespaced_pod_status("p", "work", {"status": {}}))
        target = {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n"}}
        body = await forbidden(core.create_namespaced_pod_binding("p", "work", target))
        assert f'User "{SA}" cannot create resource "pods/binding"' in body["message"]
        await core.read_namespace("work")  # the ClusterRoleBinding: every namespace
        body = await forbidden(core.list_namespace())
        assert body["message"].endswith('in API group "" at the cluster scope')
        # The RoleBinding of a ClusterRole naming nodes grants no node: nodes are
        # cluster-scoped, a RoleBinding holds in its namespace only.
        body = await forbidden(core.read_node("fake-node"))
        assert body["message"] == (
            f'nodes "fake-node" is forbidden: User "{SA}" cannot get resource "nodes" in API'
            ' group "" at the cluster scope'
        )


async def test_a_cluster_role_binding_grants_cluster_scoped_resources(tmp_path: Path) -> None:
    """Nodes (cluster-scoped) only through a ClusterRoleBinding, and only the verbs and
    names its ClusterRole holds."""
    rules = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    policy = [
        role("ClusterRole", "nodes", rules),
        binding("ClusterRoleBinding", "ClusterRole", "nodes"),
    ]
    async with (
        running_fake_k8s(tmp_path, rbac=RbacPolicy(policy), kubeconfig_user=SA) as fake,
        kubeconfig_api_client(fake.kubeconfig_path) as api,
    ):
        core = client.CoreV1Api(api)
        node = await core.read_node("fake-node")
        assert node.metadata.name == "fake-node"
        await forbidden(core.list_node())
        await forbidden(core.patch_node_status("fake-node", {"status": {}}))
        await forbidden(core.list_namespaced_pod("default"))  # nodes only, but everywhere


async def test_served_requests_are_recorded_with_their_rbac_attributes(k8s: FakeK8s) -> None:
    k8s.server.record_served()
    async with kubeconfig_api_client(k8s.kubeconfig_path) as api:
        core = client.CoreV1Api(api)
        await core.create_namespaced_pod("work", pod("p"))
        await forbidden(core.delete_namespaced_pod("p", "work"))
    served = [
        (r.user, r.attrs.verb, r.attrs.resource, r.attrs.namespace, r.attrs.name)
        for r in k8s.server.served
    ]
    assert served == [(SA, "create", "pods", "work", None)]  # the denied delete was not served


async def test_enforcement_can_be_off_while_recording(tmp_path: Path) -> None:
    async with running_fake_k8s(
        tmp_path, rbac=RbacPolicy(POLICY), enforce_rbac=False, kubeconfig_user=SA
    ) as fake:
        fake.server.record_served()
        async with kubeconfig_api_client(fake.kubeconfig_path) as api:
            await client.CoreV1Api(api).list_namespaced_secret("default")
        served = [(r.attrs.verb, r.attrs.resource) for r in fake.server.served]
        assert served == [("list", "secrets")]


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/n/pods", {}, ("list", "", "pods", None, "n", None)),
        (
            "GET",
            "/api/v1/namespaces/n/pods",
            {"watch": "True"},
            ("watch", "", "pods", None, "n", None),
        ),
        ("GET", "/api/v1/pods", {"watch": "1"}, ("watch", "", "pods", None, None, None)),
        ("GET", "/api/v1/nodes/n1", {}, ("get", "", "nodes", None, None, "n1")),
        ("GET", "/api/v1/namespaces/n", {}, ("get", "", "namespaces", None, "n", "n")),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", None, None, None)),
        ("GET", "/api/v1/namespaces/n/pods/p/log", {}, ("get", "", "pods", "log", "n", "p")),
        (
            "DELETE",
            "/api/v1/namespaces/n/pods",
            {},
            ("deletecollection", "", "pods", None, "n", None),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/n/pods/p/status",
            {},
            ("patch", "", "pods", "status", "n", "p"),
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/n/leases/l",
            {},
            ("update", "coordination.k8s.io", "leases", None, "n", "l"),
        ),
    ],
)
def test_request_attributes(
    method: str, path: str, query: dict[str, str], expected: tuple[Any, ...]
) -> None:
    a = request_attributes(method, path, query)
    assert (a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name) == expected
