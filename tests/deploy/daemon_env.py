"""The daemon's environment as a rendered overlay defines it, and the Settings the
daemon builds from it (daemon/settings.py: load_settings reads OTM_<FIELD> and a few
conventional AWS variables)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath
from typing import Any

from daemon.kube import names
from daemon.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from tests.deploy import inventory as inv

Doc = dict[str, Any]
DAEMON_CONTAINER = "daemon"


def daemon_container(docs: list[Doc]) -> Doc:
    deployment = inv.find(docs, "Deployment", "otm-daemon", names.DAEMON_NAMESPACE)
    assert deployment is not None, "the render has no otm-daemon Deployment"
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == DAEMON_CONTAINER)


def secret_placeholder(ref: Doc) -> str:
    """Stands in for a value the kubelet reads from a Secret at pod start."""
    return f"<secret {ref['name']}/{ref['key']}>"


def daemon_env(docs: list[Doc]) -> dict[str, str]:
    """The daemon container's environment: envFrom ConfigMaps, then env entries (which
    win, as in the kubelet). Secret and field references become placeholders."""
    container = daemon_container(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        assert ref is not None, f"envFrom source {source} is not a ConfigMap"
        config = inv.find(docs, "ConfigMap", ref["name"], names.DAEMON_NAMESPACE)
        assert config is not None, f"ConfigMap {ref['name']} is not in the render"
        env.update({key: str(value) for key, value in (config.get("data") or {}).items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry.get("valueFrom") or {}
        if "secretKeyRef" in source:
            env[entry["name"]] = secret_placeholder(source["secretKeyRef"])
        elif "fieldRef" in source:
            env[entry["name"]] = f"<field {source['fieldRef']['fieldPath']}>"
        else:
            raise AssertionError(f"env {entry['name']}: unsupported source {source}")
    return env


def daemon_settings(docs: list[Doc]) -> Settings:
    """What `otm daemon` in the rendered Deployment would run with."""
    return load_settings(env=daemon_env(docs))


#: Read by load_settings besides the OTM_<FIELD> variables (the YAML settings file).
EXTRA_OTM_VARIABLES = frozenset({"OTM_CONFIG"})
_SECRET_LIKE = re.compile(r"TOKEN(?!S_PER_)|SECRET|PASSWORD|API_?KEY|CREDENTIAL", re.I)
_ANY_ADDRESS = ("0.0.0.0", "::")


def unknown_otm_variables(env: dict[str, str]) -> list[str]:
    fields = {f.name for f in dataclasses.fields(Settings)}
    return sorted(
        key
        for key in env
        if key.startswith(ENV_PREFIX)
        and key not in EXTRA_OTM_VARIABLES
        and key[len(ENV_PREFIX) :].lower() not in fields
    )


def _writable_mounts(docs: list[Doc], container: Doc) -> list[PurePosixPath]:
    deployment = inv.find(docs, "Deployment", "otm-daemon", names.DAEMON_NAMESPACE) or {}
    volumes = {
        v["name"]: v
        for v in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []
    }
    return [
        PurePosixPath(m["mountPath"])
        for m in container.get("volumeMounts") or []
        if not m.get("readOnly") and "emptyDir" in volumes.get(m["name"], {})
    ]


def check_daemon_settings(docs: list[Doc]) -> list[str]:
    """The rendered daemon environment is one `load_settings` accepts, with no unknown
    OTM_* keys, listening on the pod network on the declared ports, with its secrets from
    Secrets and its data dir on a writable volume."""
    if inv.find(docs, "Deployment", "otm-daemon", names.DAEMON_NAMESPACE) is None:
        return []  # check_names reports the missing Deployment
    container = daemon_container(docs)
    env = daemon_env(docs)
    problems = [
        f"daemon env: {key} is not a daemon setting (daemon/settings.py)"
        for key in unknown_otm_variables(env)
    ]
    config = inv.find(docs, "ConfigMap", names.DAEMON_CONFIGMAP, names.DAEMON_NAMESPACE) or {}
    problems += [
        f"daemon env: {key} is a secret and must come from a Secret, not the ConfigMap"
        for key in (config.get("data") or {})
        if _SECRET_LIKE.search(key)
    ]
    try:
        settings = load_settings(env=env)
    except SettingsError as exc:
        return [*problems, f"daemon env: load_settings fails: {exc}"]
    for var, host in (
        ("OTM_ROUTER_HOST", settings.router_host),
        ("OTM_ADMIN_HOST", settings.admin_host),
    ):
        if host not in _ANY_ADDRESS:
            problems.append(
                f"daemon env: {var} is {host!r}; in a pod it must be 0.0.0.0 (kubelet probes, "
                "Services and the ALB connect to the pod IP)"
            )
    declared = {p["containerPort"] for p in container.get("ports") or []}
    for var, port, expected in (
        ("OTM_ROUTER_PORT", settings.router_port, names.DAEMON_ROUTER_PORT),
        ("OTM_ADMIN_PORT", settings.admin_port, names.DAEMON_ADMIN_PORT),
    ):
        if port != expected or port not in declared:
            problems.append(
                f"daemon env: {var} is {port}; the container port and Services use {expected}"
            )
    for var, namespace, expected_namespace in (
        ("OTM_TENANT_NAMESPACE", settings.tenant_namespace, names.TENANT_NAMESPACE),
        ("OTM_DAEMON_NAMESPACE", settings.daemon_namespace, names.DAEMON_NAMESPACE),
    ):
        if namespace != expected_namespace:
            problems.append(
                f"daemon env: {var} is {namespace!r}, the tree uses {expected_namespace!r}"
            )
    data_dir = PurePosixPath(str(settings.data_dir))
    if not any(data_dir == m or m in data_dir.parents for m in _writable_mounts(docs, container)):
        problems.append(
            f"daemon env: data_dir {data_dir} is not on a writable volume "
            "(the root filesystem is read-only)"
        )
    return problems
