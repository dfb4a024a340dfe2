"""The daemon's Role grants exactly what the daemon calls: no more, no less.

The required RBAC is not written down here: it is derived from the requests the daemon's
own code makes against the fake API server, authenticated as its ServiceAccount with
recording on (tests/support/fake_k8s/rbac.py): the Kubernetes runtime's cold and warm
starts, readiness, logs and stops, the warm pool growing and shrinking, the pod
informer's list and watch (which the reconciler reads), a pod stranded Terminating on a
lost node being force-deleted (which reads its Node: the one cluster-wide grant), and
leader election on the Lease. Every recorded request must be allowed by one rendered rule,
and every rendered rule (verb by verb, resource by resource, Roles and ClusterRoles) must
have been used.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import CoreV1Api

from daemon.kube import manifests as m
from daemon.kube import names
from daemon.lifecycle.leader import KubernetesLease
from daemon.settings import load_settings
from otm.devtools.fake_telegram import FakeTelegram
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import open_runtime
from tests.loops.loop_support import stop_tasks
from tests.support.daemon_rbac import DAEMON_USER, daemon_rbac_options, deployed_rbac_objects
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s.rbac import RbacPolicy, RequestAttributes, rule_allows
from tests.support.polling import eventually
from tests.support.records import sample_launch as launch

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node (warm pods)")

# One grant: (namespace or None for a ClusterRoleBinding's everywhere, apiGroup,
# resource[/subresource], verb, resourceName or None).
Grant = tuple[str | None, str, str, str, str | None]


def rendered_grants(objects: tuple[Mapping[str, Any], ...]) -> set[Grant]:
    """Every (namespace, group, resource, verb, name) the daemon's Roles and ClusterRoles
    grant it."""
    policy = RbacPolicy(objects)
    grants: set[Grant] = set()
    for grant in policy.grants:
        if f"User:{DAEMON_USER}" not in grant.subjects:
            continue
        for rule in grant.rules:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        for name in rule.get("resourceNames") or [None]:
                            grants.add((grant.namespace, group, resource, verb, name))
    return grants


def covering(grants: set[Grant], attrs: RequestAttributes) -> Iterator[Grant]:
    for grant in grants:
        namespace, group, resource, verb, name = grant
        rule = {
            "apiGroups": [group],
            "resources": [resource],
            "verbs": [verb],
            **({"resourceNames": [name]} if name else {}),
        }
        # A ClusterRoleBinding's grant holds everywhere; a RoleBinding's in its namespace.
        if namespace in (None, attrs.namespace) and rule_allows(rule, attrs):
            yield grant


async def exercise_the_daemon(tmp_path: Path, telegram: FakeTelegram) -> list[RequestAttributes]:
    """Run the daemon's Kubernetes flows as its ServiceAccount; what it asked for."""
    backend = ProcessPodBackend(tmp_path / "pods")
    try:
        async with running_otm_k8s(  # with what tenant pods' admission requires
            tmp_path,
            namespaces=("default", names.TENANT_NAMESPACE, names.DAEMON_NAMESPACE),
            pod_backend=backend,
            bookmark_interval=0.2,
            **daemon_rbac_options(enforce=False),
        ) as k8s:
            backend.store = k8s.server.store
            k8s.server.record_served()
            async with open_runtime(
                k8s.kubeconfig_path, warm=True, api_root=telegram.base_url
            ) as runtime:
                pool = runtime.warm_pool
                assert pool is not None
                # The pool as the leader runs it: filled, refilled after a claim, shrunk.
                pool.target = 1
                sizing = asyncio.create_task(pool.run(), name="rbac-warm-pool")
                try:
                    await eventually(lambda: pool.available() == 1, timeout=30, what="warm")
                    # Warm: claim and bind, readiness, logs, stop.
                    await runtime.start(launch("alice"))
                    await runtime.wait_ready("alice", timeout=30)
                    _ = [line async for line in runtime.logs("alice", follow=False, since_s=None)]
                    await runtime.stop("alice", grace_s=5)
                    await eventually(lambda: pool.available() == 1, timeout=30, what="refill")
                    pool.target = 0
                    pool.poke()
                    await eventually(lambda: pool.size == 0, timeout=30, what="shrunk")
                finally:
                    await stop_tasks(sizing)
                # Cold (the pool is empty), then a second start of a live tenant (adopted).
                await runtime.start(launch("bob"))
                await runtime.wait_ready("bob", timeout=30)
                await runtime.start(launch("bob"))
                # Another replica created the pod first (the create path's 409: read it).
                await runtime._create_pod("bob", None, "hash")
                await runtime.stop("bob", grace_s=5)
                # A Secret left behind by a daemon that died mid-stop is replaced.
                async with k8s.api_client() as admin:
                    leftover = m.tenant_secret(launch("carol"), "{}", namespace=runtime.namespace)
                    await CoreV1Api(admin).create_namespaced_secret(runtime.namespace, leftover)
                await runtime.start(launch("carol"))
                await runtime.stop("carol", grace_s=5)
                # A pod stranded Terminating on a lost node: its Node is read (get by
                # name), then that incarnation is force-deleted. Last: no kubelet acts
                # after the node is lost.
                await runtime.start(launch("dora"))
                await runtime.wait_ready("dora", timeout=30)
                await k8s.server.lose_node()
                await runtime.stop("dora", grace_s=1)
            settings = load_settings(
                flags={"runtime": "kubernetes", "kubeconfig": str(k8s.kubeconfig_path)}, env={}
            )
            lease = await KubernetesLease.open(settings, identity="replica-a", lease_s=5)
            try:
                assert await lease.try_acquire()
                assert await lease.renew()
                await lease.release()
            finally:
                await lease.close()
            served = k8s.server.served
    finally:
        await backend.close()
    return [r.attrs for r in served if r.user == DAEMON_USER]


async def test_the_daemon_role_grants_exactly_what_the_daemon_calls(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    grants = rendered_grants(deployed_rbac_objects())
    requests = await exercise_the_daemon(tmp_path, telegram)
    assert requests, "nothing recorded"
    missing = sorted(
        {
            f"{a.verb} {a.resource_path} in {a.namespace or 'the cluster scope'}"
            + (f" ({a.name})" if a.name else "")
            for a in requests
            if not any(covering(grants, a))
        }
    )
    assert not missing, f"the daemon needs grants its Roles lack: {missing}"
    used = {grant for a in requests for grant in covering(grants, a)}
    unused = sorted(grants - used, key=str)
    assert not unused, f"granted but never used by the daemon: {unused}"
