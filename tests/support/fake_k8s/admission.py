"""The admission plugins a real apiserver runs on pod creation, as far as they can refuse.

On a real cluster the ServiceAccount, Priority and RuntimeClass plugins (all enabled by
default) look the pod's references up and answer 403 Forbidden when one is missing, before
the object is validated or stored. The messages are the apiserver's own:

    pods "x" is forbidden: error looking up service account ns/sa: serviceaccount "sa" not found
    pods "x" is forbidden: no PriorityClass with name pc was found
    pods "x" is forbidden: pod rejected: RuntimeClass "rc" not found

The mutations they make that clients can observe are applied too: `serviceAccountName`
defaults to `default`, and `spec.priority` is the class's value (0 without a class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import errors
from .resources import PRIORITYCLASSES, RUNTIMECLASSES, SERVICEACCOUNTS, ResourceType

JSON = dict[str, Any]
Lookup = Callable[[ResourceType, str | None, str], JSON | None]

DEFAULT_SERVICE_ACCOUNT = "default"


def _forbidden(pod: JSON, why: str) -> errors.ApiError:
    meta = pod.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or ""
    return errors.forbidden(f'pods "{name}" is forbidden: {why}')


def admit_pod(lookup: Lookup, namespace: str, pod: JSON) -> None:
    """Refuse (403) a pod whose ServiceAccount, PriorityClass or RuntimeClass is missing;
    default `serviceAccountName` and set `spec.priority` as the plugins do."""
    spec = pod.setdefault("spec", {})
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    account = account or DEFAULT_SERVICE_ACCOUNT
    if lookup(SERVICEACCOUNTS, namespace, account) is None:
        raise _forbidden(
            pod,
            f"error looking up service account {namespace}/{account}: "
            f'serviceaccount "{account}" not found',
        )
    spec["serviceAccountName"] = account
    priority_class = spec.get("priorityClassName")
    if priority_class:
        found = lookup(PRIORITYCLASSES, None, priority_class)
        if found is None:
            raise _forbidden(pod, f"no PriorityClass with name {priority_class} was found")
        spec["priority"] = int(found.get("value") or 0)
    else:
        spec.setdefault("priority", 0)
    runtime_class = spec.get("runtimeClassName")
    if runtime_class and lookup(RUNTIMECLASSES, None, runtime_class) is None:
        raise _forbidden(pod, f'pod rejected: RuntimeClass "{runtime_class}" not found')
