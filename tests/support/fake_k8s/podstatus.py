"""Pure functions that write a pod's status the way a kubelet does (in place, on a copy).

The shapes follow a real v1.3x kubelet: conditions PodScheduled, PodReadyToStartContainers,
Initialized, ContainersReady, Ready (each with lastTransitionTime), and per-container
`containerStatuses` with `state.waiting|running|terminated`.
"""

from __future__ import annotations

from typing import Any

from .defaults import new_uid, rfc3339

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


def _container_statuses(
    pod: JSON, restarts: int, state: JSON, *, ready: bool, last_state: JSON | None = None
) -> list[JSON]:
    uid = pod["metadata"]["uid"]
    # A restarted container's last state is the exit it restarts from.
    previous = {
        c.get("name"): c["state"]
        if "terminated" in (c.get("state") or {})
        else c.get("lastState") or {}
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    }
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
                "lastState": last_state if last_state is not None else previous.get(name, {}),
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
    init = (pod.get("spec") or {}).get("initContainers") or []
    if init:
        init_statuses(pod, {}, init[0]["name"], {"waiting": {"reason": "PodInitializing"}})


def mark_running(pod: JSON, pod_ip: str, restarts: int, *, ready: bool) -> None:
    status = pod.setdefault("status", {})
    status["phase"] = "Running"
    status["podIP"] = pod_ip
    status["podIPs"] = [{"ip": pod_ip}]
    set_condition(status, "PodReadyToStartContainers", True)
    set_condition(status, "Initialized", True)
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


def init_statuses(pod: JSON, restarts: dict[str, int], current: str | None, state: JSON) -> None:
    """`initContainerStatuses`: those before `current` completed (sidecars running),
    `current` in `state`, those after it waiting; None for `current`: all done."""
    status = pod.setdefault("status", {})
    init = (pod.get("spec") or {}).get("initContainers") or []
    if not init:
        return
    statuses, reached = [], current is None
    now = rfc3339()
    for container in init:
        name = container["name"]
        sidecar = container.get("restartPolicy") == "Always"
        if name == current:
            reached, own = True, state
        elif not reached:
            own = (
                {"running": {"startedAt": now}}
                if sidecar
                else {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}
            )
        else:
            own = {"waiting": {"reason": "PodInitializing"}}
        statuses.append(
            {
                "name": name,
                "image": container.get("image", ""),
                "imageID": "",
                "ready": "terminated" in own or (sidecar and "running" in own),
                "started": "running" in own,
                "restartCount": restarts.get(name, 0),
                "state": own,
                "lastState": {},
            }
        )
    status["initContainerStatuses"] = statuses
    initialized = current is None
    set_condition(
        status, "Initialized", initialized, None if initialized else "ContainersNotInitialized"
    )
    if not initialized:
        for cs in status.get("containerStatuses") or []:
            cs["state"] = {"waiting": {"reason": "PodInitializing"}}


def mark_waiting(pod: JSON, container: str, reason: str, message: str | None) -> None:
    """One (main or init) container waits: ErrImagePull, CrashLoopBackOff, ..."""
    status = pod.setdefault("status", {})
    waiting: JSON = {"reason": reason}
    if message:
        waiting["message"] = message
    for field in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(field) or []:
            if cs.get("name") == container:
                if "terminated" in (cs.get("state") or {}):
                    cs["lastState"] = cs["state"]
                cs["state"] = {"waiting": waiting}
                cs["ready"] = cs["started"] = False


def mark_crashed(pod: JSON, exit_code: int, reason: str, message: str | None) -> None:
    """The containers exited and will be restarted (restartPolicy): terminated, not Ready,
    the phase stays Running."""
    mark_terminated(pod, exit_code, reason, message, set_phase=False)


def ready_node(name: str, address: str) -> JSON:
    """The Node object a kubelet registers: Ready, with its address."""
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [_node_ready("True", "KubeletReady", "kubelet is posting ready status")],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def _node_ready(value: str, reason: str, message: str) -> JSON:
    now = rfc3339()
    return {
        "type": "Ready",
        "status": value,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def mark_node_lost(node: JSON) -> None:
    """What the node lifecycle controller writes when the kubelet stops posting status."""
    status = node.setdefault("status", {})
    others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
    lost = _node_ready("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    status["conditions"] = [*others, lost]
    spec = node.setdefault("spec", {})
    taint = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": rfc3339()}
    spec["taints"] = [*(spec.get("taints") or []), taint]


def node_ready(node: JSON | None) -> bool:
    for condition in ((node or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def mark_started(pod: JSON, container: str) -> None:
    """The container's startup probe passed (or it has none)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container and "running" in (cs.get("state") or {}):
            cs["started"] = True


def pod_event(
    namespace: str,
    name: str,
    uid: str,
    node: str,
    reason: str,
    message: str,
    *,
    warning: bool = False,
) -> JSON:
    """A core/v1 Event about a pod, as the kubelet on `node` records it."""
    now = rfc3339()
    return {
        "metadata": {"name": f"{name}.{new_uid().replace('-', '')[:16]}"},
        "involvedObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": namespace,
            "name": name,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "count": 1,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }
