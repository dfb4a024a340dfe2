"""What a kubelet hands a container: its environment and its Secret/ConfigMap volume files,
resolved from the store the way a real kubelet resolves them."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from .resources import CONFIGMAPS, SECRETS, ResourceType

JSON = dict[str, Any]
Lookup = Callable[[ResourceType, str, str], JSON | None]

_FIELD_REF_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(LookupError):
    """A referenced Secret/ConfigMap or key is missing (a kubelet's CreateContainerConfigError)."""


def _values(lookup: Lookup, namespace: str, ref_kind: str, name: str) -> dict[str, str] | None:
    """A Secret's data decoded, or a ConfigMap's data; None when the object is missing."""
    if ref_kind == "secret":
        secret = lookup(SECRETS, namespace, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    configmap = lookup(CONFIGMAPS, namespace, name)
    return None if configmap is None else dict(configmap.get("data") or {})


# The kubelet's own wording (a container's CreateContainerConfigError message).
_KINDS = {"secret": "Secret", "configMap": "ConfigMap"}


def _missing(ref_kind: str, name: str) -> ConfigError:
    return ConfigError(f'{ref_kind.lower()} "{name}" not found')


def _key_ref(lookup: Lookup, namespace: str, ref_kind: str, ref: JSON) -> str | None:
    name = ref.get("name", "")
    values = _values(lookup, namespace, ref_kind, name)
    if values is None or ref.get("key") not in values:
        if ref.get("optional"):
            return None
        if values is None:
            raise _missing(ref_kind, name)
        raise ConfigError(
            f"couldn't find key {ref.get('key')} in {_KINDS[ref_kind]} {namespace}/{name}"
        )
    return values[ref["key"]]


def _field_ref(pod: JSON, path: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
    }
    if path in simple:
        return str(simple[path] or "")
    if m := _FIELD_REF_RE.match(path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def container_env(lookup: Lookup, pod: JSON, container_name: str) -> dict[str, str]:
    """`envFrom` then `env` of a container, later entries winning, as a kubelet builds it."""
    namespace = pod["metadata"]["namespace"]
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    container = next((c for c in containers if c.get("name") == container_name), None)
    if container is None:
        raise KeyError(container_name)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref_kind = "secret" if "secretRef" in source else "configMap"
        ref = source.get("secretRef") or source.get("configMapRef") or {}
        values = _values(lookup, namespace, ref_kind, ref.get("name", ""))
        if values is None:
            if ref.get("optional"):
                continue
            raise _missing(ref_kind, ref.get("name", ""))
        env.update({source.get("prefix", "") + k: v for k, v in values.items()})
    for var in container.get("env") or []:
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = str(var.get("value", ""))
            continue
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref(lookup, namespace, "secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(lookup, namespace, "configMap", source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        else:
            raise ConfigError(f"unsupported valueFrom for {var['name']!r}")
        if value is not None:
            env[var["name"]] = value
    return env


def volume_files(lookup: Lookup, pod: JSON, volume_name: str) -> dict[str, bytes]:
    """The files of a Secret or ConfigMap volume: {relative path: content}, honouring
    `items` (key → path); other volume types are not materialized by the fake."""
    namespace = pod["metadata"]["namespace"]
    volumes = (pod.get("spec") or {}).get("volumes") or []
    volume = next((v for v in volumes if v.get("name") == volume_name), None)
    if volume is None:
        raise KeyError(volume_name)
    if "secret" in volume:
        source, name = volume["secret"], volume["secret"].get("secretName", "")
        obj = lookup(SECRETS, namespace, name)
        data = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
    elif "configMap" in volume:
        source, name = volume["configMap"], volume["configMap"].get("name", "")
        obj = lookup(CONFIGMAPS, namespace, name)
        data = {k: v.encode() for k, v in ((obj or {}).get("data") or {}).items()}
    else:
        raise ConfigError(f"volume {volume_name!r} is neither a Secret nor a ConfigMap")
    if obj is None:
        if source.get("optional"):
            return {}
        raise _missing("secret" if "secret" in volume else "configMap", name)
    items = source.get("items")
    if not items:
        return data
    missing = [i["key"] for i in items if i["key"] not in data]
    if missing:
        kind = "secret" if "secret" in volume else "configmap"
        raise ConfigError(f"references non-existent {kind} key: {missing[0]}")
    return {i.get("path", i["key"]): data[i["key"]] for i in items}
