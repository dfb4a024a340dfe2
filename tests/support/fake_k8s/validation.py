"""The subset of apiserver validation the fake enforces (422 Invalid on failure).

Enough to catch the mistakes a controller makes: bad names and label values, pods without
containers or images, secrets with non-base64 data, deployments whose template does not
match their selector, and pod updates that touch immutable spec fields.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .errors import invalid
from .resources import ResourceType
from .selectors import LABEL_KEY_RE, LABEL_VALUE_RE

JSON = dict[str, Any]
Cause = tuple[str, str, str]  # (reason, field, message)

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_RE = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DATA_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")

_SUBDOMAIN_HINT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_LABEL_HINT = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)


def is_dns1123_label(name: str) -> bool:
    return len(name) <= 63 and DNS1123_LABEL_RE.match(name) is not None


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and DNS1123_SUBDOMAIN_RE.match(name) is not None


def name_causes(rt: ResourceType, name: str, field: str = "metadata.name") -> list[Cause]:
    if rt.name_rule == "label":
        if not is_dns1123_label(name):
            return [("FieldValueInvalid", field, f'Invalid value: "{name}": {_LABEL_HINT}')]
    elif not is_dns1123_subdomain(name):
        return [("FieldValueInvalid", field, f'Invalid value: "{name}": {_SUBDOMAIN_HINT}')]
    return []


def _label_causes(meta: JSON) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        if not LABEL_KEY_RE.match(key):
            causes.append(("FieldValueInvalid", "metadata.labels", f'Invalid value: "{key}"'))
        if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": '
                    "a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
    for key, value in (meta.get("annotations") or {}).items():
        if not LABEL_KEY_RE.match(key):
            causes.append(("FieldValueInvalid", "metadata.annotations", f'Invalid value: "{key}"'))
        if not isinstance(value, str):
            causes.append(("FieldValueInvalid", f"metadata.annotations[{key}]", "must be a string"))
    return causes


def _container_causes(spec: JSON, field: str, required: bool) -> list[Cause]:
    containers = spec.get(field)
    if not containers:
        return [("FieldValueRequired", f"spec.{field}", "Required value")] if required else []
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"spec.{field}[{i}]"
        name = container.get("name") or ""
        if not name:
            causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
        elif not is_dns1123_label(name):
            causes.append(("FieldValueInvalid", f"{where}.name", f'Invalid value: "{name}"'))
        elif name in seen:
            causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not container.get("image"):
            causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
    return causes


def _data_causes(obj: JSON, base64_values: bool) -> list[Cause]:
    causes: list[Cause] = []
    for field in ("data", "binaryData", "stringData"):
        for key, value in (obj.get(field) or {}).items():
            if not _DATA_KEY_RE.match(key):
                causes.append(("FieldValueInvalid", f"{field}[{key}]", "a valid config key"))
            if base64_values and field == "data":
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    causes.append(("FieldValueInvalid", f"data[{key}]", "illegal base64 data"))
    return causes


def _deployment_causes(spec: JSON) -> list[Cause]:
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not spec.get("selector"):
        return [("FieldValueRequired", "spec.selector", "Required value")]
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    causes: list[Cause] = []
    if any(labels.get(k) != v for k, v in selector.items()):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                "`selector` does not match template `labels`",
            )
        )
    return causes + _container_causes(template.get("spec") or {}, "containers", True)


def validate_object(rt: ResourceType, obj: JSON) -> None:
    """Raise 422 Invalid when `obj` (with its final name) would be rejected on create/update."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes = name_causes(rt, name) + _label_causes(meta)
    spec = obj.get("spec") or {}
    if rt.is_pod:
        causes += _container_causes(spec, "containers", True)
        causes += _container_causes(spec, "initContainers", False)
    elif rt.plural == "secrets" and rt.group == "":
        causes += _data_causes(obj, base64_values=True)
    elif rt.plural == "configmaps":
        causes += _data_causes(obj, base64_values=False)
    elif rt.plural == "deployments":
        causes += _deployment_causes(spec)
    elif rt.plural == "runtimeclasses":
        if not obj.get("handler"):
            causes.append(("FieldValueRequired", "handler", "Required value"))
    elif rt.plural == "priorityclasses" and not isinstance(obj.get("value"), int):
        causes.append(("FieldValueRequired", "value", "Required value"))
    if causes:
        raise invalid(rt, name, causes)


def _mutable_pod_spec(spec: JSON) -> JSON:
    """The pod spec with the fields an update may change blanked out."""
    blank = dict(spec)
    for field in ("containers", "initContainers"):
        if field in blank:
            blank[field] = [{**c, "image": ""} for c in blank[field] or []]
    for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        blank.pop(field, None)
    return blank


def validate_update(rt: ResourceType, old: JSON, new: JSON) -> None:
    validate_object(rt, new)
    if rt.is_pod and _mutable_pod_spec(old.get("spec") or {}) != _mutable_pod_spec(
        new.get("spec") or {}
    ):
        raise invalid(
            rt,
            old["metadata"]["name"],
            [
                (
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields "
                    "other than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                    "tolerations), `spec.terminationGracePeriodSeconds`",
                )
            ],
        )
