"""Deleting tenant pods and waiting for them to go (PodDeletion, mixed into the runtime).

Pods stranded on a lost node stay Terminating for ever, since only a node's kubelet
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
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from daemon.kube.client import JSON, ApiException, call_json
from daemon.kube.informer import PodInformer
from daemon.kube.manifests import PodSettings

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


# Extra time beyond the grace period for the kubelet to report a pod gone.
STOP_SLACK_S = 30.0


def _rv_at_least(current: str | None, wanted: str | None) -> bool:
    # resourceVersions are opaque, but every apiserver (etcd revision) makes them ordered
    # integers; if one is not, fall back to trusting the cache.
    if not current or not wanted:
        return True
    try:
        return int(current) >= int(wanted)
    except ValueError:
        return True


class PodDeletion:
    """Mixed into KubernetesRuntime (which sets these attributes)."""

    core: Any
    informer: PodInformer
    namespace: str
    pod_settings: PodSettings

    async def _delete_pod(
        self, name: str, *, grace_s: float, uid: str | None = None
    ) -> JSON | None:
        """Delete (only that incarnation when ``uid`` is given: a namesake another replica
        created since is left alone); the pod as the server answered, None if gone."""
        options: JSON = {"gracePeriodSeconds": max(0, round(grace_s))}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            body = await call_json(
                self.core.delete_namespaced_pod,
                name,
                self.namespace,
                body=options,
                grace_period_seconds=options["gracePeriodSeconds"],
            )
        except ApiException as exc:
            if exc.status == 404 or (exc.status == 409 and uid is not None):
                return None
            raise
        return body if body.get("kind") == "Pod" else None

    async def _wait_gone(self, name: str, uid: str | None, seen_as: JSON) -> None:
        """Until the informer has caught up with ``seen_as`` and no longer holds that pod."""
        wanted_rv = seen_as["metadata"].get("resourceVersion")
        grace = seen_as["metadata"].get("deletionGracePeriodSeconds")
        timeout = float(grace if grace is not None else self.pod_settings.termination_grace_s)

        def gone(cache: Mapping[str, JSON]) -> bool | None:
            if not _rv_at_least(self.informer.resource_version, wanted_rv):
                return None
            pod = cache.get(name)
            return True if pod is None or pod["metadata"].get("uid") != uid else None

        deadline = time.monotonic() + timeout + STOP_SLACK_S
        while True:
            await self._force_if_stranded(name, uid)
            remaining = deadline - time.monotonic()
            try:
                await self.informer.wait_for(gone, min(remaining, STRANDED_CHECK_INTERVAL_S))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    async def _force_if_stranded(self, name: str, uid: str | None) -> None:
        """Force-delete this incarnation of the pod if it is stranded on a lost node."""
        pod = self.informer.cache.get(name)
        if pod is None or (uid and pod["metadata"].get("uid") != uid):
            return
        if await is_stranded(self.core, pod):
            node = pod["spec"].get("nodeName")
            log.warning("pod %s is stranded on lost node %s: force-deleting it", name, node)
            await self._delete_pod(name, grace_s=0, uid=pod["metadata"]["uid"])
