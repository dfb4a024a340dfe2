"""A fake Kubernetes API server for tests and benchmarks (see README.md alongside).

It speaks the real HTTP API on 127.0.0.1, so the daemon's unmodified kubernetes_asyncio
code runs against it: CRUD with one global resourceVersion, watches with bookmarks and
410 Expired, label/field selectors, PUT/PATCH with optimistic concurrency, graceful pod
deletion and finalizers, and a simulated scheduler + kubelet with a pluggable pod backend.
"""

from .backend import (
    PORT_MAP_ANNOTATION,
    PodBackend,
    PodContext,
    PodStarted,
    SimulatedPodBackend,
    pod_port_map,
)
from .errors import ApiError
from .kubelet import KubeletConfig
from .podenv import ConfigError
from .resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    PRIORITYCLASSES,
    RUNTIMECLASSES,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    ResourceType,
)
from .server import FakeKubernetes
from .store import Change, Store

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "PORT_MAP_ANNOTATION",
    "PRIORITYCLASSES",
    "RUNTIMECLASSES",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "ApiError",
    "Change",
    "ConfigError",
    "FakeKubernetes",
    "KubeletConfig",
    "PodBackend",
    "PodContext",
    "PodStarted",
    "ResourceType",
    "SimulatedPodBackend",
    "Store",
    "pod_port_map",
]
