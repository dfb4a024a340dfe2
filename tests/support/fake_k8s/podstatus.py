"""Pure functions that write a pod's status the way a kubelet does (in place, on a copy).

The shapes follow a real v1.3x kubelet: conditions PodScheduled, PodReadyToStartContainers,
Initialized, ContainersReady, Ready (each with lastTransitionTime), and per-container
`containerStatuses` with `state.waiting|running|terminated`.
"""

from __future__ import annotations

from typing import Any

from .defaults import rfc3339

JSON = dict[str, Any]


def set_condition(status: JSON, kind: str, value: bool, reason: str | None = None) -> None:
    conditions: list[JSON] = status.setdefault("conditions", [])
    wanted = "True" if value else "False"
    current = next((c for c in conditions if c.get("type") == kind), None)
    if current is None:
        current = {"type": kind}
        conditions.append(current)
    if current.get("status") != wanted:
        current["lastTransitionTime"] = rfc3339()
    current["status"] = wanted
    current["lastProbeTime"] = None
    if reason:
        current["reason"] = reason
    else:
        current.pop("reason", None)


def _container_statuses(pod: JSON, restarts: int, state: JSON, *, ready: bool) -> list[JSON]:
    uid = pod["metadata"]["uid"]
    statuses = []
    for container in pod["spec"]["containers"]:
        name = container["name"]
        statuses.append(
            {
                "name": name,
                "image": container.get("image", ""),
                "imageID": "",
                "containerID": f"fake://{uid[:8]}-{name}-{restarts}",
                "ready": ready,
                "started": "running" in state,
                "restartCount": restarts,
                "state": state,
                "lastState": {},
            }
        )
    return statuses


def mark_scheduled(pod: JSON, node_name: str) -> None:
    pod["spec"]["nodeName"] = node_name
    set_condition(pod.setdefault("status", {}), "PodScheduled", True)


def mark_pending(pod: JSON, host_ip: str, restarts: int) -> None:
    status = pod.setdefault("status", {})
    status["phase"] = "Pending"
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    status.setdefault("startTime", rfc3339())
    set_condition(status, "PodReadyToStartContainers", False)
    set_condition(status, "Initialized", True)
    set_condition(status, "Ready", False, "ContainersNotReady")
    set_condition(status, "ContainersReady", False, "ContainersNotReady")
    set_condition(status, "PodScheduled", True)
    waiting = {"waiting": {"reason": "ContainerCreating"}}
    status["containerStatuses"] = _container_statuses(pod, restarts, waiting, ready=False)


def mark_running(pod: JSON, pod_ip: str, restarts: int, *, ready: bool) -> None:
    status = pod.setdefault("status", {})
    status["phase"] = "Running"
    status["podIP"] = pod_ip
    status["podIPs"] = [{"ip": pod_ip}]
    set_condition(status, "PodReadyToStartContainers", True)
    running = {"running": {"startedAt": rfc3339()}}
    status["containerStatuses"] = _container_statuses(pod, restarts, running, ready=ready)
    mark_ready(pod, ready)


def mark_ready(pod: JSON, ready: bool) -> None:
    status = pod.setdefault("status", {})
    reason = None if ready else "ContainersNotReady"
    set_condition(status, "ContainersReady", ready, reason)
    set_condition(status, "Ready", ready, reason)
    for container in status.get("containerStatuses") or []:
        container["ready"] = ready and "running" in container.get("state", {})


def mark_sandbox_lost(pod: JSON) -> None:
    """The sandbox died (e.g. Kata SandboxChanged): containers wait to be re-created."""
    status = pod.setdefault("status", {})
    set_condition(status, "PodReadyToStartContainers", False)
    for container in status.get("containerStatuses") or []:
        container["lastState"] = container.get("state", {})
        container["state"] = {"waiting": {"reason": "ContainerCreating"}}
        container["started"] = False
    mark_ready(pod, False)


def mark_terminated(
    pod: JSON, exit_code: int, reason: str, message: str | None, *, set_phase: bool = True
) -> None:
    status = pod.setdefault("status", {})
    if set_phase:
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
    now = rfc3339()
    for container in status.get("containerStatuses") or []:
        started = (container.get("state", {}).get("running") or {}).get("startedAt", now)
        terminated: JSON = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": now,
            "containerID": container.get("containerID"),
        }
        if message:
            terminated["message"] = message
        container["state"] = {"terminated": terminated}
        container["started"] = False
    set_condition(status, "PodReadyToStartContainers", False)
    pod_reason = "PodCompleted" if exit_code == 0 else "PodFailed"
    set_condition(status, "ContainersReady", False, pod_reason)
    set_condition(status, "Ready", False, pod_reason)
