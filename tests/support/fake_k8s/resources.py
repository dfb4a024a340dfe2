"""The resource types the fake API server serves, and how their URLs look."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    """One REST resource, e.g. pods in core/v1 or leases in coordination.k8s.io/v1."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    # Whether writes to the main resource keep `status` and only `/status` may change it.
    status_subresource: bool = False
    # "subdomain" (most objects) or "label" (namespaces, services): the DNS-1123 name rule.
    name_rule: str = "subdomain"
    # Pods return the deleted object from DELETE; most others return a Status.
    returns_deleted_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_name(self) -> str:
        """The name used in apiserver messages: `pods`, `leases.coordination.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_pod(self) -> bool:
        return self.group == "" and self.plural == "pods"

    @property
    def is_node(self) -> bool:
        return self.group == "" and self.plural == "nodes"

    @property
    def is_namespace(self) -> bool:
        return self.group == "" and self.plural == "namespaces"


NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "Namespace",
    namespaced=False,
    status_subresource=True,
    name_rule="label",
)
PODS = ResourceType("", "v1", "pods", "Pod", status_subresource=True, returns_deleted_object=True)
SECRETS = ResourceType("", "v1", "secrets", "Secret")
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap")
SERVICES = ResourceType("", "v1", "services", "Service", status_subresource=True, name_rule="label")
EVENTS = ResourceType("", "v1", "events", "Event")
EVENTS_V1 = ResourceType("events.k8s.io", "v1", "events", "Event")
DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", status_subresource=True)
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease")
SERVICEACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount")
NODES = ResourceType("", "v1", "nodes", "Node", namespaced=False, status_subresource=True)
RUNTIMECLASSES = ResourceType(
    "node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", namespaced=False
)
PRIORITYCLASSES = ResourceType(
    "scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False
)

ALL_RESOURCES: tuple[ResourceType, ...] = (
    NAMESPACES,
    PODS,
    SECRETS,
    CONFIGMAPS,
    SERVICES,
    EVENTS,
    EVENTS_V1,
    DEPLOYMENTS,
    LEASES,
    SERVICEACCOUNTS,
    NODES,
    RUNTIMECLASSES,
    PRIORITYCLASSES,
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in ALL_RESOURCES}


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def resource_of(manifest: dict[str, object]) -> ResourceType:
    """The served type of a manifest, by its apiVersion and kind."""
    for rt in ALL_RESOURCES:
        if rt.api_version == manifest.get("apiVersion") and rt.kind == manifest.get("kind"):
            return rt
    raise ValueError(f"the fake does not serve {manifest.get('apiVersion')} {manifest.get('kind')}")


@dataclass(frozen=True)
class ResourcePath:
    """A parsed API path: `/api/v1/namespaces/ns/pods/name/status` and friends."""

    resource: ResourceType
    namespace: str | None  # None: cluster-scoped object, or a list across all namespaces
    name: str | None
    subresource: str | None


def parse_path(path: str) -> ResourcePath | None:
    """Map a URL path to a resource; None when the fake does not serve it."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    # `namespaces/{ns}/{plural}...` is a namespaced path unless {plural} is a subresource
    # of the Namespace object itself (`namespaces/{name}/status`).
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = find_resource(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    resource = find_resource(group, version, rest[0])
    if resource is None:
        return None
    if resource.namespaced is False and namespace is not None:
        return None
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    return ResourcePath(resource, namespace, name, subresource)
