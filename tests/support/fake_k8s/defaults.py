"""Server-side defaults the apiserver (and its admission plugins) fill in on create."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from typing import Any

from .resources import ResourceType

JSON = dict[str, Any]

# The alphabet and length the apiserver uses for generateName suffixes.
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LENGTH = 5


def rfc3339(moment: dt.datetime | None = None) -> str:
    """A timestamp as the apiserver writes it: second precision, UTC, `Z` suffix."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_after(seconds: float) -> str:
    return rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


def generated_name(prefix: str) -> str:
    suffix = "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(_NAME_SUFFIX_LENGTH))
    return f"{prefix}{suffix}"


def new_uid() -> str:
    return str(uuid.uuid4())


def _default_pod(obj: JSON) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            image = str(container.get("image", ""))
            untagged = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
            pull = "Always" if untagged or image.endswith(":latest") else "IfNotPresent"
            container.setdefault("imagePullPolicy", pull)
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def fold_secret_string_data(obj: JSON) -> None:
    """Fold a Secret's write-only `stringData` into `data` (on create and on update)."""
    # stringData is write-only: it is folded into data (base64) and never stored.
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {}) or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def _default_namespace(obj: JSON) -> None:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}


def _default_deployment(obj: JSON) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    )
    obj.setdefault("status", {})


def _default_service(obj: JSON, cluster_ip: str) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec.get("clusterIP") != "None":
        spec.setdefault("clusterIP", cluster_ip)
        spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    obj.setdefault("status", {"loadBalancer": {}})


def apply_create_defaults(rt: ResourceType, obj: JSON, *, serial: int) -> None:
    """Fill type-specific defaults in place; `serial` makes allocated addresses unique."""
    if rt.is_pod:
        _default_pod(obj)
    elif rt.is_namespace:
        _default_namespace(obj)
    elif rt.group == "" and rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
        fold_secret_string_data(obj)
    elif rt.plural == "deployments":
        _default_deployment(obj)
    elif rt.group == "" and rt.plural == "services":
        _default_service(obj, f"10.96.{(serial >> 8) & 255}.{serial & 255}")
