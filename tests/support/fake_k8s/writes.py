"""Pure preparation of writes: a client body checked and normalized for create/replace, and
the object an update would store (server-owned fields kept, status guarded, validated)."""

from __future__ import annotations

import copy
import re
from typing import Any

from . import errors
from .defaults import fold_secret_string_data
from .resources import ResourceType
from .validation import validate_update

JSON = dict[str, Any]

# Metadata the server owns: a client's copy of these is ignored on writes.
_SYSTEM_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "namespace",
    "name",
)


# metav1.MicroTime decodes with Go's layout "2006-01-02T15:04:05.000000Z07:00": exactly six
# fractional digits, then Z or an offset. Anything else fails to decode (400 BadRequest).
_MICRO_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
MICRO_TIME_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"
# The MicroTime fields of the served types (top level or under spec).
_MICRO_TIME_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "leases": (("spec", "acquireTime"), ("spec", "renewTime")),
    "events": (("eventTime",), ("series", "lastObservedTime")),
}


def check_micro_times(rt: ResourceType, obj: JSON) -> None:
    """400 BadRequest, as the apiserver's decoder answers, for a malformed MicroTime."""
    for path in _MICRO_TIME_FIELDS.get(rt.plural, ()):
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if not isinstance(value, str) or not _MICRO_TIME_RE.match(value):
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f'parsing time "{value}" as "{MICRO_TIME_LAYOUT}": cannot parse'
            )


def checked_body(rt: ResourceType, namespace: str | None, body: Any) -> JSON:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    obj = copy.deepcopy(body)
    if obj.get("kind") not in (None, rt.kind) or obj.get("apiVersion") not in (
        None,
        rt.api_version,
    ):
        raise errors.bad_request(
            f"the API version in the data ({obj.get('apiVersion')}) does not match the "
            f"expected API version ({rt.api_version})"
        )
    obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
    meta = obj.setdefault("metadata", {}) or {}
    obj["metadata"] = meta
    if rt.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent "
                "on the request"
            )
        if namespace is None:
            raise errors.method_not_allowed("a namespaced object needs a namespace in the URL")
    if rt.group == "" and rt.plural == "secrets":
        fold_secret_string_data(obj)
    check_micro_times(rt, obj)
    return obj


def updated_object(rt: ResourceType, old: JSON, new: JSON, subresource: str | None) -> JSON:
    if subresource == "status":
        status = new.get("status")
        new = copy.deepcopy(old)
        new["status"] = status
    elif subresource is not None:
        raise errors.method_not_allowed(f"subresource {subresource!r} does not accept updates")
    else:
        if rt.status_subresource:
            new["status"] = copy.deepcopy(old.get("status"))
        for key in _SYSTEM_METADATA:
            if key in old["metadata"]:
                new["metadata"][key] = old["metadata"][key]
            else:
                new["metadata"].pop(key, None)
        if old["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(
                old["metadata"].get("finalizers") or []
            )
            if added:
                raise errors.invalid(
                    rt,
                    old["metadata"]["name"],
                    [
                        (
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object "
                            "is being deleted",
                        )
                    ],
                )
        validate_update(rt, old, new)
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
    return new
