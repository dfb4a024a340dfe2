"""The daemon's rendered environment (ConfigMap + Deployment env) loads through
daemon/settings.py into the production Settings, and the checker catches what would
make the daemon misconfigured or unreachable in a pod."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon import router
from daemon.admin import api as admin_api
from daemon.kube import names
from daemon.settings import ENV_PREFIX, Settings
from tests.deploy import inventory as inv
from tests.deploy.daemon_env import (
    check_daemon_settings,
    daemon_container,
    daemon_env,
    daemon_settings,
    secret_placeholder,
)
from tests.deploy.netpol import selector_matches
from tests.deploy.render import KUSTOMIZE_ROOT, render

Doc = dict[str, Any]
OVERLAYS = ["base", "eks", "dev"]


def _site(overlay: str) -> dict[str, str]:
    text = (KUSTOMIZE_ROOT / "overlays" / overlay / "site.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_otm_variable_is_a_settings_field(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    env = daemon_env(rendered[overlay])
    fields = {f.name for f in dataclasses.fields(Settings)}
    otm_keys = [key for key in env if key.startswith(ENV_PREFIX)]
    assert len(otm_keys) >= 15
    for key in otm_keys:
        assert key[len(ENV_PREFIX) :].lower() in fields, key
    assert set(env) - set(otm_keys) == {"AWS_REGION"}


@pytest.mark.parametrize("overlay", ["eks", "dev"])
def test_rendered_environment_loads_the_production_settings(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    settings = daemon_settings(rendered[overlay])
    site = _site(overlay)
    assert settings.router_host == "0.0.0.0"
    assert settings.admin_host == "0.0.0.0"
    assert (settings.router_port, settings.admin_port) == (
        names.DAEMON_ROUTER_PORT,
        names.DAEMON_ADMIN_PORT,
    )
    assert (settings.registry, settings.state_store, settings.runtime) == (
        "dynamodb",
        "s3",
        "kubernetes",
    )
    assert settings.redis_url == f"redis://{names.REDIS_SERVICE}:{names.REDIS_PORT}/0"
    assert settings.dynamodb_table == "tenants"
    assert settings.s3_bucket == site["S3_BUCKET"]
    assert settings.aws_region == site["AWS_REGION"]  # from AWS_REGION, as the SDK reads it
    assert settings.public_base_url == f"https://{site['PUBLIC_HOST']}"
    assert settings.tenant_namespace == names.TENANT_NAMESPACE
    assert settings.daemon_namespace == names.DAEMON_NAMESPACE
    assert settings.admin_token == secret_placeholder({"name": "otm-admin-token", "key": "token"})
    assert settings.kubeconfig is None  # in-cluster config
    assert settings.log_format == "json"
    assert settings.data_dir == Path("/tmp")
    assert settings.agent_image.startswith("ghcr.io/openclaw/openclaw:")
    assert not settings.agent_image.endswith(":latest")


@pytest.mark.parametrize("overlay", ["eks", "dev"])
def test_probes_and_alb_health_check_use_open_admin_routes(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """/livez and /readyz need no bearer token (daemon/admin/api.py), so the kubelet
    and the ALB can call them."""
    docs = rendered[overlay]
    settings = daemon_settings(docs)
    container = daemon_container(docs)
    admin_port_names = {
        p["name"] for p in container["ports"] if p["containerPort"] == settings.admin_port
    }
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] in admin_api.UNAUTHENTICATED_PATHS, probe
        assert http["port"] in admin_port_names | {settings.admin_port}, probe
    for ingress in inv.of_kind(docs, "Ingress"):
        # The admin port is Prometheus-only (NetworkPolicy): the ALB checks the router.
        annotations = ingress["metadata"]["annotations"]
        assert annotations["alb.ingress.kubernetes.io/healthcheck-port"] == "traffic-port"
        assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == router.HEALTH_PATH


def _config_data(docs: list[Doc]) -> dict[str, str]:
    config = inv.find(docs, "ConfigMap", names.DAEMON_CONFIGMAP, names.DAEMON_NAMESPACE)
    assert config is not None
    data: dict[str, str] = config["data"]
    return data


def _set(key: str, value: str) -> Callable[[list[Doc]], None]:
    return lambda docs: _config_data(docs).update({key: value})


def _drop(key: str) -> Callable[[list[Doc]], None]:
    def drop(docs: list[Doc]) -> None:
        del _config_data(docs)[key]

    return drop


def _read_only_tmp(docs: list[Doc]) -> None:
    for mount in daemon_container(docs)["volumeMounts"]:
        mount["readOnly"] = True


BREAKAGES: list[tuple[str, Callable[[list[Doc]], None], str]] = [
    (
        "typo",
        _set("OTM_ROUTER_HOSTS", "0.0.0.0"),
        "daemon env: OTM_ROUTER_HOSTS is not a daemon setting (daemon/settings.py)",
    ),
    (
        "router-default-loopback",
        _drop("OTM_ROUTER_HOST"),
        "daemon env: OTM_ROUTER_HOST is '127.0.0.1'; in a pod it must be 0.0.0.0 (kubelet "
        "probes, Services and the ALB connect to the pod IP)",
    ),
    (
        "admin-loopback",
        _set("OTM_ADMIN_HOST", "127.0.0.1"),
        "daemon env: OTM_ADMIN_HOST is '127.0.0.1'; in a pod it must be 0.0.0.0 (kubelet "
        "probes, Services and the ALB connect to the pod IP)",
    ),
    (
        "admin-port",
        _set("OTM_ADMIN_PORT", "9090"),
        "daemon env: OTM_ADMIN_PORT is 9090; the container port and Services use 8081",
    ),
    (
        "bad-value",
        _set("OTM_REGISTRY", "dynamo"),
        "daemon env: load_settings fails: registry: expected one of sqlite, dynamodb, got 'dynamo'",
    ),
    (
        "plain-token",
        _set("OTM_ADMIN_TOKEN", "hunter2"),
        "daemon env: OTM_ADMIN_TOKEN is a secret and must come from a Secret, not the ConfigMap",
    ),
    (
        "daemon-namespace",
        _set("OTM_DAEMON_NAMESPACE", "otm"),
        "daemon env: OTM_DAEMON_NAMESPACE is 'otm', the tree uses 'otm-system'",
    ),
    (
        "data-dir-on-root",
        _drop("OTM_DATA_DIR"),
        "daemon env: data_dir /home/otm/.otm is not on a writable volume (the root "
        "filesystem is read-only)",
    ),
    (
        "data-dir-read-only",
        _read_only_tmp,
        "daemon env: data_dir /tmp is not on a writable volume (the root filesystem is read-only)",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "expected"), [(b[1], b[2]) for b in BREAKAGES], ids=[b[0] for b in BREAKAGES]
)
def test_broken_daemon_environment_is_reported(
    rendered: dict[str, list[Doc]],
    monkeypatch: pytest.MonkeyPatch,
    breakage: Callable[[list[Doc]], None],
    expected: str,
) -> None:
    # The default data dir is ~/.otm of whoever runs the daemon; fix it for the message.
    monkeypatch.setenv("HOME", "/home/otm")
    docs = copy.deepcopy(rendered["eks"])
    assert check_daemon_settings(docs) == []
    breakage(docs)
    problems = check_daemon_settings(docs)
    assert expected in problems, "\n".join(problems)


#: Time the AWS Load Balancer Controller may take to start deregistering a terminating
#: pod's target after its endpoint goes (a reconcile plus the ELB API call).
CONTROLLER_LAG_S = 10
#: What the daemon needs after SIGTERM: finish forwards, release the lease and locks.
DAEMON_SHUTDOWN_S = 30


@pytest.mark.parametrize("overlay", ["eks"])
def test_the_daemon_outlives_its_alb_target(rendered: dict[str, list[Doc]], overlay: str) -> None:
    """A terminating daemon keeps serving until the ALB has stopped sending it requests
    (deregistration delay plus the controller's lag), then still has time to shut down."""
    docs = rendered[overlay]
    (ingress,) = inv.of_kind(docs, "Ingress")
    attributes = ingress["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/target-group-attributes"
    ]
    delay = int(
        dict(a.split("=") for a in attributes.split(","))["deregistration_delay.timeout_seconds"]
    )
    container = daemon_container(docs)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= delay + CONTROLLER_LAG_S
    deployment = inv.find(docs, "Deployment", "otm-daemon", names.DAEMON_NAMESPACE)
    assert deployment is not None
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + DAEMON_SHUTDOWN_S


def test_prometheus_can_find_the_daemons_metrics(
    rendered: dict[str, list[Doc]], tree_copy: Path
) -> None:
    """The dashboard's data source: scrape annotations on the daemon pods, and the opt-in
    ServiceMonitor component, both on the admin port's unauthenticated /metrics."""
    docs = rendered["eks"]
    settings = daemon_settings(docs)
    deployment = inv.find(docs, "Deployment", "otm-daemon", names.DAEMON_NAMESPACE)
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.admin_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in admin_api.UNAUTHENTICATED_PATHS

    overlay = tree_copy / "overlays" / "eks"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kustomization["components"].append("../../components/service-monitor")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    with_monitor = render(overlay)
    (monitor,) = inv.of_kind(with_monitor, "ServiceMonitor")
    (service,) = [
        s
        for s in inv.of_kind(with_monitor, "Service")
        if s["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
        and selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels") or {})
    ]
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["port"] == settings.admin_port
    assert endpoint["path"] == "/metrics"
