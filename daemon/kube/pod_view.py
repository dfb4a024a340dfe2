"""The part of a pod the daemon reads, cut out of the API's JSON as the informer receives it.

A listed pod is ~4 KB of JSON (more on a real cluster: managedFields, volumes, probes,
security contexts) and ~22 KB as Python objects; the informer holds every tenant and warm
pod, so at 10,000 pods the whole objects would cost hundreds of MB, and parsing them most
of a list's time. What its consumers read (pod_status.py, manifests.pod_tenant/is_warm/
warm_pod_image, warm_pool.claimable, the runtime's lookups, pod_deletion) is declared
here once, as TypedDicts in the pods' own shape, so the consumers work on a view exactly
as on a whole pod:

* ``decode_pod_list`` decodes a list response straight into views (msgspec skips every
  other field without building it: ~25x faster than ``json.loads``);
* ``pod_view`` cuts a pod already parsed (a watch event's) down to the same view.

A consumer that starts reading another field must add it here:
``tests/k8s_runtime/test_pod_view.py`` checks each reader against a view.
"""

from __future__ import annotations

import sys
from typing import Any, TypedDict

import msgspec

JSON = dict[str, Any]

# Leaves are Any: a view keeps whatever the API sent there (never a decode error).


class ViewMetadata(TypedDict, total=False):
    name: Any
    namespace: Any
    uid: Any
    resourceVersion: Any
    creationTimestamp: Any
    deletionTimestamp: Any
    deletionGracePeriodSeconds: Any
    labels: dict[str, Any] | None
    annotations: dict[str, Any] | None


class ViewSpec(TypedDict, total=False):
    nodeName: Any


class ViewCondition(TypedDict, total=False):
    type: Any
    status: Any
    reason: Any
    message: Any


class ViewContainerStatus(TypedDict, total=False):
    name: Any
    ready: Any
    started: Any
    restartCount: Any
    state: Any
    lastState: Any


class ViewStatus(TypedDict, total=False):
    phase: Any
    reason: Any
    message: Any
    podIP: Any
    conditions: list[ViewCondition] | None
    initContainerStatuses: list[ViewContainerStatus] | None
    containerStatuses: list[ViewContainerStatus] | None


class ViewPod(TypedDict, total=False):
    metadata: ViewMetadata | None
    spec: ViewSpec | None
    status: ViewStatus | None


class _ViewPodList(TypedDict, total=False):
    metadata: dict[str, Any] | None
    items: list[ViewPod] | None


CONDITION_TYPES = frozenset({"Ready", "PodScheduled"})
"""The conditions pod_status.py reads (readiness, unschedulable); a pod has five or more."""
_SHARED_METADATA = ("namespace",)
_SHARED_STATUS = ("phase", "reason")
_SHARED_CONDITION = ("type", "status", "reason")
_SHARED_CONTAINER = ("name",)
_SHARED_SPEC = ("nodeName",)

_list_decoder = msgspec.json.Decoder(_ViewPodList)


def _intern(mapping: Any, keys: tuple[str, ...]) -> None:
    """The string values under ``keys`` repeat across pods (namespace, phase, condition
    types...): one interned string for all pods instead of one per pod, as parsed."""
    for k in keys:
        if isinstance(value := mapping.get(k), str):
            mapping[k] = sys.intern(value)


def _finish(pod: Any) -> JSON:
    """A decoded view as its readers expect it, in place: kind, apiVersion, every part
    present, only the conditions read, repeated strings shared."""
    pod["kind"] = "Pod"
    pod["apiVersion"] = "v1"
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    pod["metadata"], pod["spec"], pod["status"] = metadata, spec, status
    _intern(metadata, _SHARED_METADATA)
    for key in ("labels", "annotations"):
        if mapping := metadata.get(key):
            metadata[key] = {
                k: sys.intern(v) if isinstance(v, str) else v for k, v in mapping.items()
            }
    _intern(spec, _SHARED_SPEC)
    _intern(status, _SHARED_STATUS)
    if (conditions := status.get("conditions")) is not None:
        status["conditions"] = [c for c in conditions if c.get("type") in CONDITION_TYPES]
        for condition in status["conditions"]:
            _intern(condition, _SHARED_CONDITION)
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or ():
            _intern(container, _SHARED_CONTAINER)
    view: JSON = pod
    return view


def decode_pod_list(raw: bytes) -> tuple[list[JSON], str | None, str]:
    """A pod list response body as (views, continue token or None, resourceVersion)."""
    body = _list_decoder.decode(raw)
    meta = body.get("metadata") or {}
    views = [_finish(item) for item in body.get("items") or ()]
    return views, meta.get("continue") or None, str(meta.get("resourceVersion") or "")


def pod_view(pod: JSON) -> JSON:
    """The view of a pod already parsed (the kept values are shared with ``pod``)."""
    return _finish(msgspec.convert(pod, ViewPod))
