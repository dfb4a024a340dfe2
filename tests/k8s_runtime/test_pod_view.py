"""The informer's pod views (daemon/kube/pod_view.py): every reader of cached pods answers
the same on a view as on the whole pod, for pods in each state those readers tell apart."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from daemon.kube import manifests as m
from daemon.kube.pod_deletion import grace_elapsed
from daemon.kube.pod_status import instance_from_pod, pod_endpoint, unschedulable_reason
from daemon.kube.pod_view import decode_pod_list, pod_view
from daemon.kube.warm_pool import claimable

JSON = dict[str, Any]
SETTINGS = m.PodSettings(namespace="otm-tenants", image="openclaw:1", state_sync=True)
T0 = "2026-12-04T22:00:00Z"


def _condition(kind: str, status: str, **extra: str) -> JSON:
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": T0,
        **extra,
    }


def _container(name: str, state: JSON, **extra: Any) -> JSON:
    return {
        "name": name,
        "image": "openclaw:1",
        "imageID": "docker://sha256:abc",
        "containerID": f"containerd://{name}",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": state,
        "lastState": {},
        **extra,
    }


def _placed(pod: JSON, name: str) -> JSON:
    pod = copy.deepcopy(pod)
    pod["metadata"].update(
        name=name,
        uid=f"uid-{name}",
        resourceVersion="42",
        creationTimestamp=T0,
        generation=1,
        managedFields=[{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:x": {}}}],
    )
    pod["spec"]["nodeName"] = "node-1"
    return pod


def _running(pod: JSON) -> JSON:
    pod["status"] = {
        "phase": "Running",
        "qosClass": "Burstable",
        "hostIP": "10.0.0.1",
        "podIP": "10.1.2.3",
        "podIPs": [{"ip": "10.1.2.3"}],
        "startTime": T0,
        "conditions": [_condition("Ready", "True"), _condition("PodScheduled", "True")],
        "containerStatuses": [
            _container("gateway", {"running": {"startedAt": T0}}, ready=True, started=True)
        ],
    }
    return pod


def _pods() -> list[JSON]:
    tenant = _placed(m.tenant_pod("t1", settings=SETTINGS), "otm-t1-abcde")
    warm = _placed(m.warm_pod(settings=SETTINGS, config_sha256="c0ffee"), "otm-warm-abcde")
    ready = _running(copy.deepcopy(tenant))
    ready["metadata"]["annotations"]["fake-k8s.otm.dev/port-map"] = json.dumps({"8787": 40001})
    crashed = _running(copy.deepcopy(tenant))
    crashed["status"]["containerStatuses"] = [
        _container(
            "gateway",
            {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            restartCount=3,
            lastState={"terminated": {"exitCode": 1, "reason": "Error", "message": "boom"}},
        )
    ]
    failed = _running(copy.deepcopy(tenant))
    failed["status"].update(phase="Failed", reason="Evicted", message="low on memory")
    failed["status"]["containerStatuses"] = [
        _container("gateway", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    ]
    init_blocked = copy.deepcopy(tenant)
    init_blocked["status"] = {
        "phase": "Pending",
        "initContainerStatuses": [
            _container("restore", {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}})
        ],
    }
    unschedulable = copy.deepcopy(tenant)
    del unschedulable["spec"]["nodeName"]
    unschedulable["status"] = {
        "phase": "Pending",
        "conditions": [
            _condition("PodScheduled", "False", reason="Unschedulable", message="0/3 nodes")
        ],
    }
    deleting = _running(copy.deepcopy(tenant))
    deleting["metadata"].update(deletionTimestamp=T0, deletionGracePeriodSeconds=30)
    warm_ready = _running(copy.deepcopy(warm))
    return [tenant, ready, crashed, failed, init_blocked, unschedulable, deleting, warm_ready]


def _readings(pod: JSON) -> tuple[Any, ...]:
    now = datetime(2026, 12, 4, 23, tzinfo=UTC)
    return (
        instance_from_pod(pod),
        instance_from_pod(pod, gone=True),
        claimable(pod),
        m.pod_tenant(pod),
        m.is_warm(pod),
        m.warm_pod_image(pod),
        m.warm_pod_config_hash(pod),
        pod_endpoint(pod, 8787),
        unschedulable_reason(pod),
        grace_elapsed(pod, now) if pod["metadata"].get("deletionTimestamp") else None,
        (pod.get("spec") or {}).get("nodeName"),
        {k: pod["metadata"].get(k) for k in ("name", "uid", "resourceVersion")},
        pod["metadata"].get("creationTimestamp"),
    )


def _decoded(pod: JSON) -> JSON:
    """The view of ``pod`` as a list response brings it (decoded, never parsed whole)."""
    raw = json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": [pod]})
    views, _, _ = decode_pod_list(raw.encode())
    return views[0]


@pytest.mark.parametrize("index", range(len(_pods())))
def test_readers_answer_the_same_on_a_view(index: int) -> None:
    pod = _pods()[index]
    assert _readings(pod_view(pod)) == _readings(pod)
    assert _readings(_decoded(pod)) == _readings(pod)
    assert _decoded(pod) == pod_view(pod)


def test_a_view_drops_what_no_reader_needs() -> None:
    pod = _pods()[1]
    view = pod_view(pod)
    assert "managedFields" not in view["metadata"]
    assert set(view["spec"]) == {"nodeName"}
    assert "podIPs" not in view["status"] and "startTime" not in view["status"]
    assert [c["type"] for c in view["status"]["conditions"]] == ["Ready", "PodScheduled"]
    assert len(json.dumps(view)) < len(json.dumps(pod)) / 3
