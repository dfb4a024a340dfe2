"""Every overlay renders with the pinned kubectl and passes every check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.kube import names
from tests.deploy import inventory as inv
from tests.deploy.checks import check_rendered
from tests.deploy.render import KUSTOMIZE_ROOT, REPO_ROOT, kubectl_binary

Doc = dict[str, Any]
YAMLLINT_CONFIG = REPO_ROOT / "deploy" / ".yamllint"


def test_pinned_kubectl_is_used() -> None:
    out = subprocess.run(
        [kubectl_binary(), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert "Client Version: v1.37.1" in out
    assert "Kustomize Version: v5.8.1" in out


@pytest.mark.parametrize("overlay", ["base", "eks", "dev"])
def test_render_passes_all_checks(rendered: dict[str, list[Doc]], overlay: str) -> None:
    assert check_rendered(rendered[overlay]) == []


@pytest.mark.parametrize(("overlay", "replicas"), [("base", 2), ("eks", 3), ("dev", 1)])
def test_daemon_deployment(rendered: dict[str, list[Doc]], overlay: str, replicas: int) -> None:
    deployment = inv.find(rendered[overlay], "Deployment", "otm-daemon", names.DAEMON_NAMESPACE)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == replicas
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/otm-project/otm:0.1.0"
    assert container["command"] == ["otm", "daemon"]
    assert {p["containerPort"] for p in container["ports"]} == {
        names.DAEMON_ROUTER_PORT,
        names.DAEMON_ADMIN_PORT,
        names.DAEMON_MODEL_GATEWAY_PORT,
    }


@pytest.mark.parametrize("overlay", ["eks", "dev"])
def test_site_values_reach_the_daemon_config(rendered: dict[str, list[Doc]], overlay: str) -> None:
    site = dict(
        line.split("=", 1)
        for line in (KUSTOMIZE_ROOT / "overlays" / overlay / "site.env").read_text().splitlines()
        if line.strip()
    )
    config = inv.find(
        rendered[overlay], "ConfigMap", names.DAEMON_CONFIGMAP, names.DAEMON_NAMESPACE
    )
    assert config is not None
    assert config["data"]["AWS_REGION"] == site["AWS_REGION"]
    assert config["data"]["OTM_S3_BUCKET"] == site["S3_BUCKET"]
    assert config["data"]["OTM_TENANT_STATE_ROLE_ARN"] == site["TENANT_STATE_ROLE_ARN"]
    assert config["data"]["OTM_PUBLIC_BASE_URL"] == f"https://{site['PUBLIC_HOST']}"
    # The site ConfigMap is local-config: used for replacements, never applied.
    assert inv.find(rendered[overlay], "ConfigMap", "otm-site") is None


def test_eks_overlay_adds_ingress_and_metal_nodes(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["eks"]
    kinds = {d["kind"] for d in docs}
    assert {"Ingress", "NodePool", "EC2NodeClass", "StorageClass"} <= kinds
    ingress = inv.find(docs, "Ingress", "otm-router", names.DAEMON_NAMESPACE)
    assert ingress is not None
    assert ingress["spec"]["ingressClassName"] == "alb"
    site = (KUSTOMIZE_ROOT / "overlays" / "eks" / "site.env").read_text()
    assert f"PUBLIC_HOST={ingress['spec']['rules'][0]['host']}\n" in site
    redis = inv.find(docs, "StatefulSet", names.REDIS_SERVICE, names.DAEMON_NAMESPACE)
    assert redis is not None
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "otm-redis-gp3"


def test_dev_overlay_is_small_and_private(rendered: dict[str, list[Doc]]) -> None:
    kinds = {d["kind"] for d in rendered["dev"]}
    assert not {"Ingress", "NodePool", "EC2NodeClass"} & kinds


def test_kustomizations_avoid_the_footguns() -> None:
    """commonLabels rewrites selectors; namePrefix/nameSuffix rename objects the daemon
    refers to by constant name (and leave runtimeClassName dangling)."""
    files = sorted(KUSTOMIZE_ROOT.rglob("kustomization.yaml"))
    assert len(files) >= 4
    for path in files:
        kustomization = yaml.safe_load(path.read_text())
        assert not {"commonLabels", "namePrefix", "nameSuffix", "namespace"} & set(kustomization), (
            path
        )
        for entry in kustomization.get("labels") or []:
            assert entry.get("includeSelectors") is False, path


def test_yamllint_passes_on_deploy_tree() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "-s",
            "-c",
            str(YAMLLINT_CONFIG),
            str(REPO_ROOT / "deploy"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_config_catches_duplicate_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nkind: Secret\n")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-c", str(YAMLLINT_CONFIG), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "duplication of key" in result.stdout
