"""check_runtime_pod: a daemon-generated tenant pod checked against each render."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from daemon.kube import names
from tests.deploy.checks import check_runtime_pod
from tests.deploy.sample_pods import tenant_pod, warm_pod

Doc = dict[str, Any]


@pytest.mark.parametrize("overlay", ["eks", "dev"])
def test_representative_tenant_pod_passes(rendered: dict[str, list[Doc]], overlay: str) -> None:
    assert check_runtime_pod(tenant_pod("alice"), rendered[overlay]) == []


@pytest.mark.parametrize("overlay", ["eks", "dev"])
def test_warm_pod_passes(rendered: dict[str, list[Doc]], overlay: str) -> None:
    assert check_runtime_pod(warm_pod(), rendered[overlay]) == []


def test_warm_pod_with_generate_name_passes(rendered: dict[str, list[Doc]]) -> None:
    pod = warm_pod()
    pod["metadata"]["generateName"] = names.WARM_POD_PREFIX
    del pod["metadata"]["name"]
    assert check_runtime_pod(pod, rendered["eks"]) == []


def _spec(pod: Doc) -> Doc:
    spec: Doc = pod["spec"]
    return spec


def _openclaw(pod: Doc) -> Doc:
    containers: list[Doc] = pod["spec"]["containers"]
    return next(c for c in containers if c["name"] == "openclaw")


MUTATIONS: list[tuple[str, Callable[[Doc], None], str]] = [
    (
        "runc",
        lambda p: _spec(p).update(runtimeClassName="runc"),
        "Pod otm-tenants/alice: runtimeClassName 'runc' is not in the render",
    ),
    (
        "warm-priority",
        lambda p: _spec(p).update(priorityClassName=names.WARM_PRIORITY_CLASS),
        f"pod: priorityClassName must be {names.TENANT_PRIORITY_CLASS}",
    ),
    (
        "reserved-tenant-id",
        lambda p: p["metadata"]["labels"].update({names.LABEL_TENANT: "warm-alice"}),
        "pod: otm/tenant='warm-alice' is not a valid tenant id",
    ),
    (
        "default-sa",
        lambda p: _spec(p).update(serviceAccountName="default"),
        f"pod: serviceAccountName must be {names.TENANT_SERVICE_ACCOUNT}",
    ),
    (
        "no-app-label",
        lambda p: p["metadata"]["labels"].pop(names.LABEL_APP),
        "isolation: otm-system/otm-daemon -> otm-tenants/alice:8787/TCP is denied, "
        "should be allowed",
    ),
    (
        "other-tenants-secret",
        lambda p: _spec(p)["volumes"][1]["secret"].update(
            secretName=names.tenant_secret_name("bob")
        ),
        "pod: mounts another tenant's Secret 'otm-tenant-bob'",
    ),
    (
        "plain-env-token",
        lambda p: _openclaw(p)["env"].append({"name": "TELEGRAM_BOT_TOKEN", "value": "123:abc"}),
        "pod: container openclaw has TELEGRAM_BOT_TOKEN as plain env; secrets come from the "
        "tenant's Secret",
    ),
    (
        "unknown-configmap",
        lambda p: _spec(p)["volumes"].append(
            {"name": "x", "configMap": {"name": "openclaw-defaults"}}
        ),
        "Pod otm-tenants/alice: ConfigMap otm-tenants/openclaw-defaults is neither in "
        "the render nor on the out-of-band allow-list",
    ),
    (
        "api-token",
        lambda p: _spec(p).update(automountServiceAccountToken=True),
        "pod: must not mount a Kubernetes API token",
    ),
    (
        "wrong-name",
        lambda p: p["metadata"].update(name="openclaw-alice"),
        "pod: name 'openclaw-alice' must be 'alice' (the S3 scope is derived from the pod name)",
    ),
    (
        "schema-typo",
        lambda p: _spec(p).update(priorityClasName="x"),
        "Pod otm-tenants/alice: schema: Additional properties are not allowed "
        "('priorityClasName' was unexpected) (at spec)",
    ),
    (
        "no-memory-limit",
        lambda p: _openclaw(p)["resources"].pop("limits"),
        "pod container openclaw: needs cpu/memory requests and a memory limit",
    ),
    (
        "tolerates-nothing-fits-nothing",
        lambda p: _spec(p).update(nodeSelector={"node.kubernetes.io/instance-type": "t3.small"}),
        "scheduling: the pod fits no NodePool (labels/taints) in the render",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(m[1], m[2]) for m in MUTATIONS], ids=[m[0] for m in MUTATIONS]
)
def test_broken_tenant_pod_is_reported(
    rendered: dict[str, list[Doc]], change: Callable[[Doc], None], expected: str
) -> None:
    pod = copy.deepcopy(tenant_pod("alice"))
    change(pod)
    problems = check_runtime_pod(pod, rendered["eks"])
    assert expected in problems, "\n".join(problems)


def test_check_does_not_modify_its_inputs(rendered: dict[str, list[Doc]]) -> None:
    pod = tenant_pod("alice")
    before_pod, before_docs = copy.deepcopy(pod), copy.deepcopy(rendered["eks"])
    check_runtime_pod(pod, rendered["eks"])
    assert pod == before_pod
    assert rendered["eks"] == before_docs
