"""The part of a pod the daemon reads, cut out of the API's JSON as the informer receives it.

A listed pod is ~4 KB of JSON (more on a real cluster: managedFields, volumes, probes,
security contexts) and ~25 KB as Python objects; the informer holds every tenant and warm
pod, so at 10,000 pods the full objects would cost hundreds of MB. What its consumers
read (pod_status.py, manifests.pod_tenant/is_warm/warm_pod_image, warm_pool.claimable,
the runtime's lookups, pod_deletion) is kept here in the same shape, so they work on a
view exactly as on a full pod. A consumer that starts reading another field must add it
here: ``tests/k8s_runtime/test_pod_view.py`` checks each reader against a view.
"""

from __future__ import annotations

import sys
from typing import Any

JSON = dict[str, Any]

_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
)
_SPEC = ("nodeName",)
_SHARED_SPEC = frozenset(_SPEC)
_STATUS = ("phase", "reason", "message", "podIP")
_CONDITION = ("type", "status", "reason", "message")
_CONDITION_TYPES = frozenset({"Ready", "PodScheduled"})
"""The conditions pod_status.py reads (readiness, unschedulable); a pod has five or more."""
_CONTAINER_STATUS = ("name", "ready", "started", "restartCount", "state", "lastState")


_NO_SHARED: frozenset[str] = frozenset()
_SHARED_METADATA = frozenset({"namespace"})
_SHARED_STATUS = frozenset({"phase", "reason"})
_SHARED_CONDITION = frozenset({"type", "status", "reason"})
_SHARED_CONTAINER = frozenset({"name"})


def _pick(source: JSON, keys: tuple[str, ...], shared: frozenset[str] = _NO_SHARED) -> JSON:
    """``keys`` of ``source``; the string values under ``shared`` keys, which repeat across
    pods (namespace, phase, condition types...), interned: one string for all pods."""
    out = {k: source[k] for k in keys if k in source}
    for k in shared:
        if isinstance(value := out.get(k), str):
            out[k] = sys.intern(value)
    return out


def _interned_values(mapping: JSON) -> JSON:
    """Labels and annotations: their values are mostly the same on every pod."""
    return {k: sys.intern(v) if isinstance(v, str) else v for k, v in mapping.items()}


def pod_view(pod: JSON) -> JSON:
    """A new dict with the fields above (the kept values are shared with ``pod``)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    view_status = _pick(status, _STATUS, _SHARED_STATUS)
    if conditions := status.get("conditions"):
        view_status["conditions"] = [
            _pick(c, _CONDITION, _SHARED_CONDITION)
            for c in conditions
            if c.get("type") in _CONDITION_TYPES
        ]
    for key in ("initContainerStatuses", "containerStatuses"):
        if statuses := status.get(key):
            view_status[key] = [_pick(cs, _CONTAINER_STATUS, _SHARED_CONTAINER) for cs in statuses]
    metadata = _pick(pod.get("metadata") or {}, _METADATA, _SHARED_METADATA)
    for key in ("labels", "annotations"):
        if mapping := metadata.get(key):
            metadata[key] = _interned_values(mapping)
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": _pick(spec, _SPEC, _SHARED_SPEC),
        "status": view_status,
    }
