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
_STATUS = ("phase", "reason", "message", "podIP")
_CONDITION = ("type", "status", "reason", "message")
_CONTAINER_STATUS = ("name", "ready", "started", "restartCount", "state", "lastState")


def _pick(source: JSON, keys: tuple[str, ...]) -> JSON:
    return {k: source[k] for k in keys if k in source}


def pod_view(pod: JSON) -> JSON:
    """A new dict with the fields above (the kept values are shared with ``pod``)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    view_status = _pick(status, _STATUS)
    if conditions := status.get("conditions"):
        view_status["conditions"] = [_pick(c, _CONDITION) for c in conditions]
    for key in ("initContainerStatuses", "containerStatuses"):
        if statuses := status.get(key):
            view_status[key] = [_pick(cs, _CONTAINER_STATUS) for cs in statuses]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": _pick(pod.get("metadata") or {}, _METADATA),
        "spec": _pick(spec, _SPEC),
        "status": view_status,
    }
