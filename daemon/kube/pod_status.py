"""What a pod means for the Runtime port: its phase, its endpoints, why it is not ready."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from daemon.kube import manifests as m
from daemon.kube import names
from daemon.ports import Instance, InstancePhase

# Only test clusters set this: the fake kubelet runs pods as local processes on 127.0.0.1
# and maps each container port to a free host port. A real pod never carries it.
PORT_MAP_ANNOTATION = "fake-k8s.otm.dev/port-map"


def pod_endpoint(pod: Mapping[str, Any], port: int) -> tuple[str, int] | None:
    """(host, port) where a container port of the pod is reachable, None without an IP."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_MAP_ANNOTATION)
    if raw:
        mapped = {int(k): int(v) for k, v in json.loads(raw).items()}
        port = mapped.get(port, port)
    return str(ip), port


def _condition(pod: Mapping[str, Any], kind: str) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return bool(cond.get("status") == "True")
    return False


def _terminated_text(cs: Mapping[str, Any], term: Mapping[str, Any]) -> str:
    detail = term.get("message") or f"exit code {term.get('exitCode')}"
    return f"{cs.get('name')}: {term.get('reason') or 'Terminated'} ({detail})"


def _failure_reason(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return _terminated_text(cs, term)
    return str(status.get("reason") or status.get("message") or status.get("phase") or "")


# Waiting reasons of a container that will not start without outside help: the kubelet
# only retries them with back-off. The pod stays Pending or Running, so they count as a
# failure here, not as "still starting".
BROKEN_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def broken_reason(pod: Mapping[str, Any]) -> str | None:
    """Why the pod's containers cannot run (init ones shown as ``Init:<reason>``), or
    None. A container that already crashed and was restarted counts too: a tenant pod's
    gateway exits only when something is wrong, and a restart loses its in-flight turns."""
    status = pod.get("status") or {}
    groups = (("Init:", status.get("initContainerStatuses")), ("", status.get("containerStatuses")))
    for prefix, statuses in groups:
        for cs in statuses or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BROKEN_WAITING_REASONS:
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                restarts = cs.get("restartCount") or 0
                count = f" (restarted {restarts}x)" if restarts else ""
                return f"{cs.get('name')}: {prefix}{waiting['reason']}{count}{detail}"
    for cs in status.get("containerStatuses") or []:
        exited = (cs.get("state") or {}).get("terminated") or {}
        if exited.get("exitCode", 0) != 0:  # about to be restarted (or the pod fails)
            return _terminated_text(cs, exited)
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if (cs.get("restartCount") or 0) > 0 and last.get("exitCode", 0) != 0:
            return (
                f"{cs.get('name')}: restarted {cs['restartCount']}x, last exit code "
                f"{last.get('exitCode')} ({last.get('reason') or 'Error'})"
            )
    return None


def unschedulable_reason(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message while no node fits the pod (capacity being provisioned)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return str(cond.get("message") or "Unschedulable")
    return None


def _waiting_reason(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return f"{cs.get('name')}: {waiting['reason']}"
    return ""


def pod_phase(pod: Mapping[str, Any]) -> InstancePhase:
    # Being deleted wins: a stopped pod's containers end (terminal phase) on purpose.
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return InstancePhase.STOPPING
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Failed", "Succeeded") or broken_reason(pod) is not None:
        return InstancePhase.FAILED
    if phase == "Running" and _condition(pod, "Ready") and (pod.get("status") or {}).get("podIP"):
        return InstancePhase.READY
    return InstancePhase.PENDING


def instance_from_pod(pod: Mapping[str, Any], *, gone: bool = False) -> Instance:
    phase = InstancePhase.GONE if gone else pod_phase(pod)
    webhook = pod_endpoint(pod, names.OPENCLAW_WEBHOOK_PORT)
    gateway = pod_endpoint(pod, names.OPENCLAW_GATEWAY_PORT)
    if phase is InstancePhase.FAILED:
        reason = broken_reason(pod) or _failure_reason(pod)
    elif phase is InstancePhase.PENDING:
        reason = _waiting_reason(pod) or unschedulable_reason(pod) or ""
    else:
        reason = ""
    return Instance(
        name=pod["metadata"]["name"],
        tenant_id=m.pod_tenant(pod),
        phase=phase,
        webhook_url=f"http://{webhook[0]}:{webhook[1]}{m.WEBHOOK_PATH}" if webhook else None,
        gateway_url=f"http://{gateway[0]}:{gateway[1]}" if gateway else None,
        reason=reason,
        warm=m.is_warm(pod),
    )
