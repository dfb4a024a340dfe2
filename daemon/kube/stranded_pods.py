"""Pods stranded on a lost node: Terminating for ever, since only a node's kubelet
finishes a graceful deletion. The tenant's pod name is its id, so such a pod blocks every
later start of the tenant until it is gone.

A pod is stranded when it is being deleted, its grace period has run out, and its node is
gone or not Ready. Then the daemon force-deletes it (grace 0, only that incarnation: a uid
precondition), which is what an operator would do by hand. Waiting for the grace period
first leaves a partitioned-but-alive node its chance to finish the pod, final sync
included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from daemon.kube.client import ApiException, call_json

log = logging.getLogger(__name__)

# How often a wait for a deleted pod to go re-checks whether it is stranded.
STRANDED_CHECK_INTERVAL_S = 5.0


def grace_elapsed(pod: Mapping[str, Any], now: datetime | None = None) -> bool:
    """Whether the pod is being deleted and its deletionTimestamp (delete time + grace
    period) has passed."""
    stamp = (pod.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return False
    deadline = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (now or datetime.now(UTC)) >= deadline


def node_ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


async def node_lost(core: Any, node_name: str) -> bool:
    """The Node is gone or not Ready. A daemon not allowed to read Nodes (403) never
    judges one lost: the pod is then left for the operator (docs/operations.md)."""
    try:
        node = await call_json(core.read_node, node_name)
    except ApiException as exc:
        if exc.status == 404:
            return True
        if exc.status == 403:
            log.warning("cannot read node %s (RBAC): stranded pods are not forced", node_name)
            return False
        raise
    return not node_ready(node)


async def is_stranded(core: Any, pod: Mapping[str, Any]) -> bool:
    node_name = (pod.get("spec") or {}).get("nodeName")
    return bool(node_name) and grace_elapsed(pod) and await node_lost(core, str(node_name))
