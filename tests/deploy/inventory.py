"""What a rendered tree implies about the cluster: pods, namespaces, and the objects
that exist outside the tree (documented allow-lists).

Pure functions over rendered documents (dicts), shared by checks.py and the tests.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from daemon.kube import manifests, names
from tests.deploy.netpol import PodEndpoint

Doc = dict[str, Any]

WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "RuntimeClass",
        "PriorityClass",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "NodePool",
        "EC2NodeClass",
        "CustomResourceDefinition",
    }
)

# ---------------------------------------------------------------------------------------
# Allow-lists: objects a rendered tree may refer to without containing them. Each entry
# says who creates the object. Anything else a manifest names must be in the render.
# ---------------------------------------------------------------------------------------

#: (namespace, name pattern) -> who creates it.
OUT_OF_BAND_SECRETS: Mapping[tuple[str, str], str] = {
    (names.DAEMON_NAMESPACE, "otm-admin-token"): (
        "admin API bearer token; created by the operator (docs/setup-guide.md)"
    ),
    (names.DAEMON_NAMESPACE, "otm-redis-auth"): (
        "Redis ACL file (users.acl) and the daemon user's password; created by the operator "
        "(docs/setup-guide.md)"
    ),
    (names.TENANT_NAMESPACE, names.tenant_secret_name("*")): (
        "per-tenant bot token and rendered openclaw.json; created by the daemon"
    ),
    (names.TENANT_NAMESPACE, manifests.WARM_BIND_SECRET): (
        "token warm pods accept bind requests with; created by the daemon"
    ),
    (names.TENANT_NAMESPACE, manifests.WARM_CONFIG_SECRET): (
        "the pre-booted warm gateways' openclaw.json; created by the daemon"
    ),
}
#: (namespace pattern, name) -> who creates it.
OUT_OF_BAND_CONFIGMAPS: Mapping[tuple[str, str], str] = {
    ("*", "kube-root-ca.crt"): "published into every namespace by kube-controller-manager",
}
BUILTIN_PRIORITY_CLASSES = frozenset({"system-cluster-critical", "system-node-critical"})
#: IngressClass -> who installs it.
EXTERNAL_INGRESS_CLASSES: Mapping[str, str] = {"alb": "AWS Load Balancer Controller (Helm)"}
#: Every namespace has a `default` ServiceAccount.
BUILTIN_SERVICE_ACCOUNTS = frozenset({"default"})
#: Namespaces outside the tree (policies point at kube-system; `default` is where a
#: stray pod would run), with the label the API server puts on every namespace.
CLUSTER_STORAGE_CLASSES = frozenset({"gp2"})
"""StorageClasses every new EKS cluster has (gp2, provisioned through the EBS CSI driver);
none of them is marked default since Kubernetes 1.30."""
METRICS_SCRAPER_LABEL = "otm/metrics-scraper"
"""On the namespace of the Prometheus that scrapes the daemon's admin port."""
EXTERNAL_NAMESPACES: Mapping[str, Mapping[str, str]] = {
    "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
    "default": {"kubernetes.io/metadata.name": "default"},
    # The operator's Prometheus, in the namespace the setup guide has them label.
    "monitoring": {"kubernetes.io/metadata.name": "monitoring", METRICS_SCRAPER_LABEL: "true"},
}
#: Pods outside the tree that NetworkPolicies point at (CoreDNS on EKS).
EXTERNAL_PODS: tuple[PodEndpoint, ...] = (
    PodEndpoint(
        name="coredns",
        namespace="kube-system",
        labels={"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"},
        ip="10.255.0.10",
        named_ports={"dns": (53, "UDP"), "dns-tcp": (53, "TCP")},
    ),
    PodEndpoint(
        name="prometheus",
        namespace="monitoring",
        labels={names.LABEL_APP: "prometheus"},
        ip="10.255.0.20",
    ),
)


def secret_is_out_of_band(namespace: str, name: str) -> bool:
    return any(
        ns == namespace and fnmatch.fnmatchcase(name, pattern)
        for (ns, pattern) in OUT_OF_BAND_SECRETS
    )


def configmap_is_out_of_band(namespace: str, name: str) -> bool:
    return any(
        fnmatch.fnmatchcase(namespace, ns_pattern) and name == cm_name
        for (ns_pattern, cm_name) in OUT_OF_BAND_CONFIGMAPS
    )


# ---------------------------------------------------------------------------------------
# Accessors
# ---------------------------------------------------------------------------------------


def ident(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name")
    if name is None and meta.get("generateName"):
        name = f"{meta['generateName']}*"
    where = f"{ns}/{name}" if ns else str(name)
    return f"{doc.get('kind')} {where}"


def find(docs: Iterable[Doc], kind: str, name: str, namespace: str | None = None) -> Doc | None:
    for doc in docs:
        meta = doc.get("metadata") or {}
        if (
            doc.get("kind") == kind
            and meta.get("name") == name
            and (namespace is None or meta.get("namespace") == namespace)
        ):
            return doc
    return None


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def pod_template(doc: Doc) -> tuple[Doc, Doc] | None:
    """(template metadata, pod spec) of a workload or Pod; None for other kinds."""
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("metadata") or {}, doc.get("spec") or {}
    if kind == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
    elif kind in WORKLOAD_KINDS:
        template = doc["spec"]["template"]
    else:
        return None
    return template.get("metadata") or {}, template.get("spec") or {}


def pod_namespace(doc: Doc) -> str:
    """A Pod without a namespace is meant for the tenants namespace (daemon-made pods)."""
    return str((doc.get("metadata") or {}).get("namespace") or names.TENANT_NAMESPACE)


def containers(spec: Mapping[str, Any]) -> Iterator[Doc]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def named_ports(spec: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    return {
        p["name"]: (int(p["containerPort"]), p.get("protocol", "TCP"))
        for c in containers(spec)
        for p in c.get("ports") or []
        if p.get("name")
    }


def namespace_labels(docs: Iterable[Doc]) -> dict[str, dict[str, str]]:
    """Labels of every namespace, including the one the API server adds itself."""
    result = {ns: dict(labels) for ns, labels in EXTERNAL_NAMESPACES.items()}
    for doc in of_kind(docs, "Namespace"):
        name = doc["metadata"]["name"]
        labels = dict(doc["metadata"].get("labels") or {})
        labels["kubernetes.io/metadata.name"] = name
        result[name] = labels
    return result


def pod_endpoints(docs: Iterable[Doc], extra_pods: Iterable[Doc] = ()) -> list[PodEndpoint]:
    """Every pod the render (plus `extra_pods`, e.g. daemon-made ones) puts in a cluster,
    and the external pods policies refer to. Addresses are made-up VPC addresses."""
    endpoints = list(EXTERNAL_PODS)
    for index, doc in enumerate([*docs, *extra_pods]):
        template = pod_template(doc)
        if template is None:
            continue
        meta, spec = template
        namespace = pod_namespace(doc)
        endpoints.append(
            PodEndpoint(
                name=str((doc.get("metadata") or {}).get("name")),
                namespace=namespace,
                labels=dict(meta.get("labels") or {}),
                ip=f"10.0.{index // 250}.{index % 250 + 1}",
                named_ports=named_ports(spec),
            )
        )
    return endpoints


def runtime_pod_stub(tenant_id: str | None, *, warm: bool = False, name: str | None = None) -> Doc:
    """The minimal shape (labels, ports) of a pod the daemon creates at runtime, so the
    NetworkPolicies for the tenants namespace have something to select in a render."""
    labels = {names.LABEL_APP: names.APP_OPENCLAW, names.LABEL_MANAGED_BY: names.MANAGED_BY}
    if tenant_id is not None:
        labels[names.LABEL_TENANT] = tenant_id
    if warm:
        labels[names.LABEL_WARM] = "true"
    pod_name = name or (
        names.tenant_pod_name(tenant_id) if tenant_id else f"{names.WARM_POD_PREFIX}stub"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": names.TENANT_NAMESPACE, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "openclaw",
                    "ports": [
                        {"name": "webhook", "containerPort": names.OPENCLAW_WEBHOOK_PORT},
                        {"name": "gateway", "containerPort": names.OPENCLAW_GATEWAY_PORT},
                    ],
                }
            ]
        },
    }


def default_runtime_pods() -> list[Doc]:
    """Two tenants and one unclaimed warm pod: what the tenants namespace holds at runtime."""
    return [
        runtime_pod_stub("alice"),
        runtime_pod_stub("bob"),
        runtime_pod_stub(None, warm=True, name=f"{names.WARM_POD_PREFIX}x7k2p"),
    ]
