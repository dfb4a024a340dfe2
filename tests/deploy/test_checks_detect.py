"""The checker fails on deliberately broken trees: copy deploy/kustomize, break one
thing in an overlay, render with kubectl, and expect that exact problem reported."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.checks import check_rendered, check_runtime_pod
from tests.deploy.inventory import find
from tests.deploy.references import check_pod_spec_references
from tests.deploy.render import render
from tests.deploy.sample_pods import tenant_pod

Doc = dict[str, Any]


def _edit_kustomization(overlay: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = overlay / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    change(kustomization)
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False))


def _add_patch(overlay: Path, name: str, patch: dict[str, Any]) -> None:
    (overlay / name).write_text(yaml.safe_dump(patch, sort_keys=False))
    _edit_kustomization(overlay, lambda k: k.setdefault("patches", []).append({"path": name}))


def _add_resource(overlay: Path, name: str, doc: dict[str, Any]) -> None:
    (overlay / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    _edit_kustomization(overlay, lambda k: k["resources"].append(name))


def _daemon_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "otm-daemon", "namespace": "otm-system"},
        "spec": {"template": {"spec": spec}},
    }


def wrong_priority_class(overlay: Path) -> None:
    _add_patch(overlay, "prio.yaml", _daemon_patch({"priorityClassName": "otm-critical"}))


def selector_typo(overlay: Path) -> None:
    _add_patch(
        overlay,
        "np.yaml",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "openclaw-ingress-from-daemon", "namespace": "otm-tenants"},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "open-claw"}}},
        },
    )


def common_labels(overlay: Path) -> None:
    _edit_kustomization(overlay, lambda k: k.update(commonLabels={"team": "platform"}))


def secret_not_allow_listed(overlay: Path) -> None:
    env = {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "aws-keys", "key": "k"}},
    }
    _add_patch(
        overlay, "env.yaml", _daemon_patch({"containers": [{"name": "daemon", "env": [env]}]})
    )


def _cluster_rbac(name: str, rules: list[Doc], subject: Doc) -> list[Doc]:
    """A ClusterRole and a ClusterRoleBinding of it to ``subject``."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [subject],
        },
    ]


DAEMON_SA = {"kind": "ServiceAccount", "name": "otm-daemon", "namespace": "otm-system"}


def _add_resources(overlay: Path, name: str, docs: list[Doc]) -> None:
    (overlay / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    _edit_kustomization(overlay, lambda k: k["resources"].append(name))


def cluster_role(overlay: Path) -> None:
    """Listing nodes: more than the `get` by name the daemon needs."""
    rules = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    _add_resources(overlay, "cr.yaml", _cluster_rbac("otm-nodes", rules, DAEMON_SA))


def too_broad_cluster_role(overlay: Path) -> None:
    """Secrets cluster-wide: every tenant's bot token, in every namespace."""
    rules = [{"apiGroups": [""], "resources": ["secrets", "nodes"], "verbs": ["get"]}]
    _add_resources(overlay, "cr.yaml", _cluster_rbac("otm-secrets", rules, DAEMON_SA))


def wildcard_cluster_role(overlay: Path) -> None:
    rules = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["*"]}]
    _add_resources(overlay, "cr.yaml", _cluster_rbac("otm-nodes-all", rules, DAEMON_SA))


def nodes_for_another_subject(overlay: Path) -> None:
    tenant = {"kind": "ServiceAccount", "name": "otm-tenant", "namespace": "otm-tenants"}
    rules = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    _add_resources(overlay, "cr.yaml", _cluster_rbac("otm-tenant-nodes", rules, tenant))


def no_nodes_grant(overlay: Path) -> None:
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        _add_patch(
            overlay,
            f"drop-{kind}.yaml",
            {
                "$patch": "delete",
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": "otm-daemon-nodes"},
            },
        )


def allow_all_in_tenants(overlay: Path) -> None:
    _add_resource(
        overlay,
        "allow.yaml",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-all", "namespace": "otm-tenants"},
            "spec": {"podSelector": {}, "ingress": [{}]},
        },
    )


def unknown_custom_resource(overlay: Path) -> None:
    _add_resource(
        overlay,
        "sm.yaml",
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "otm", "namespace": "otm-system"},
            "spec": {"endpoints": [{"port": "admin"}]},
        },
    )


def latest_image(overlay: Path) -> None:
    _edit_kustomization(
        overlay,
        lambda k: k.update(images=[{"name": "ghcr.io/otm-project/otm", "newTag": "latest"}]),
    )


def storage_class_missing(overlay: Path) -> None:
    (overlay / "storageclass.yaml").write_text("")
    _edit_kustomization(overlay, lambda k: k["resources"].remove("storageclass.yaml"))


def nodepool_not_metal(overlay: Path) -> None:
    text = (overlay / "karpenter.yaml").read_text().replace("- metal\n", "- 8xlarge\n")
    (overlay / "karpenter.yaml").write_text(text)


CASES: list[tuple[Any, ...]] = [
    (
        "dev",
        wrong_priority_class,
        "Deployment otm-system/otm-daemon: priorityClassName 'otm-critical' is not in the render",
    ),
    (
        "dev",
        selector_typo,
        "NetworkPolicy otm-tenants/openclaw-ingress-from-daemon: podSelector {'matchLabels': "
        "{'app.kubernetes.io/name': 'open-claw'}} selects no pod",
        "isolation: otm-system/otm-daemon -> otm-tenants/alice:8787/TCP is denied, "
        "should be allowed",
    ),
    (
        "dev",
        common_labels,
        "NetworkPolicy otm-tenants/openclaw-egress: podSelector {'matchLabels': "
        "{'app.kubernetes.io/name': 'openclaw', 'team': 'platform'}} selects no pod",
    ),
    (
        "dev",
        secret_not_allow_listed,
        "Deployment otm-system/otm-daemon: Secret otm-system/aws-keys is neither in the render "
        "nor on the out-of-band allow-list",
    ),
    (
        "dev",
        cluster_role,
        "ClusterRole otm-nodes: verbs ['list', 'watch'] on nodes are not allowed cluster-wide",
    ),
    (
        "dev",
        too_broad_cluster_role,
        "ClusterRole otm-secrets: core/secrets is not allowed cluster-wide",
    ),
    (
        "dev",
        wildcard_cluster_role,
        "ClusterRole otm-nodes-all: wildcard rule {'apiGroups': [''], 'resources': ['nodes'], "
        "'verbs': ['*']}",
    ),
    (
        "dev",
        nodes_for_another_subject,
        "ClusterRoleBinding otm-tenant-nodes: only otm-system/otm-daemon gets API access, "
        "not ServiceAccount otm-tenants/otm-tenant",
    ),
    ("dev", no_nodes_grant, "rbac: otm-daemon cannot get nodes cluster-wide"),
    (
        "dev",
        allow_all_in_tenants,
        "isolation: default/impostor -> otm-tenants/alice:8787/TCP is allowed, should be denied",
    ),
    (
        "dev",
        unknown_custom_resource,
        "ServiceMonitor otm-system/otm: no schema for monitoring.coreos.com/v1 ServiceMonitor",
    ),
    (
        "dev",
        latest_image,
        "Deployment otm-system/otm-daemon container daemon: image "
        "'ghcr.io/otm-project/otm:latest' is not pinned to a version",
    ),
    (
        "eks",
        storage_class_missing,
        "StatefulSet otm-system/otm-redis: storageClassName 'otm-redis-gp3' is not in the render",
    ),
    (
        "eks",
        nodepool_not_metal,
        "NodePool otm-kata-metal: Kata needs bare metal: instance-size must be In [metal]",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_broken_tree_is_reported(tree_copy: Path, case: tuple[Any, ...]) -> None:
    """Each case: (overlay, breakage, *problems that must all be reported)."""
    overlay, breakage, *expected = case
    overlay_dir = tree_copy / "overlays" / overlay
    breakage(overlay_dir)
    problems = check_rendered(render(overlay_dir))
    for problem in expected:
        assert problem in problems, "\n".join(problems)


def test_name_prefix_leaves_runtime_class_dangling(tree_copy: Path) -> None:
    """Footgun 2: namePrefix renames the RuntimeClass, and the daemon's pods (which name
    the constant kata-qemu) would no longer find it; kustomize rewrites nothing there."""
    overlay_dir = tree_copy / "overlays" / "dev"
    _edit_kustomization(overlay_dir, lambda k: k.update(namePrefix="dev-"))
    docs = render(overlay_dir)
    assert "names: RuntimeClass kata-qemu is missing" in check_rendered(docs)
    pod_problems = check_runtime_pod(tenant_pod(), docs)
    assert "Pod otm-tenants/alice: runtimeClassName 'kata-qemu' is not in the render" in (
        pod_problems
    )
    assert "Pod otm-tenants/alice: priorityClassName 'otm-tenant' is not in the render" in (
        pod_problems
    )


def test_an_unknown_nodepool_spec_field_is_reported(rendered: dict[str, list[Doc]]) -> None:
    """Karpenter v1 moved consolidationPolicy under spec.disruption; left at the top level
    (where v1beta1 had it) the API server's pruning would drop it without a word."""
    docs = copy.deepcopy(rendered["eks"])
    pool = find(docs, "NodePool", "otm-kata-metal")
    assert pool is not None
    pool["spec"]["consolidationPolicy"] = "WhenEmpty"
    problems = check_rendered(docs)
    assert "NodePool otm-kata-metal: unknown field spec.consolidationPolicy" in problems


def test_a_configmap_key_ref_outside_the_render_is_reported(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = copy.deepcopy(rendered["dev"])
    daemon = find(docs, "Deployment", "otm-daemon", "otm-system")
    assert daemon is not None
    spec = daemon["spec"]["template"]["spec"]
    ref = {"configMapKeyRef": {"name": "site-settings", "key": "region"}}
    spec["containers"][0].setdefault("env", []).append({"name": "SITE_REGION", "valueFrom": ref})
    # The reference check alone: the daemon's env check refuses a source it does not read.
    problems = check_pod_spec_references(daemon, spec, "otm-system", docs)
    assert (
        "Deployment otm-system/otm-daemon: ConfigMap otm-system/site-settings is neither in the "
        "render nor on the out-of-band allow-list"
    ) in problems
