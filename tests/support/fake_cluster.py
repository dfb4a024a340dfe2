"""The fake Kubernetes cluster as the deploy tree sets it up (RuntimeClass, PriorityClasses,
the tenant ServiceAccount), and one whose kubelet runs stand-in agents as real processes,
for the tests that run whole daemons on the Kubernetes runtime (replicas, loops, e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.adapters.state_dir import DirStateStore
from daemon.kube import names
from daemon.ports import StateStore
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import NS, open_runtime
from tests.support.daemon_rbac import daemon_rbac_options
from tests.support.fake_k8s.fixture import FakeK8s, running_fake_k8s

DEPLOY_BASE = Path(__file__).resolve().parents[2] / "deploy" / "kustomize" / "base"
# What tenant and warm pods reference, so that pod admission lets them in.
_POD_PREREQUISITES = (
    "cluster/runtimeclass.yaml",
    "cluster/priorityclasses.yaml",
    "tenants/serviceaccount.yaml",
)


def otm_cluster_objects(tenant_namespace: str = NS) -> list[dict[str, Any]]:
    """The cluster-scoped classes and the tenant ServiceAccount from deploy/kustomize/base
    (the account moved to `tenant_namespace`), for `FakeKubernetes(objects=...)`."""
    objects: list[dict[str, Any]] = []
    for relative in _POD_PREREQUISITES:
        for doc in yaml.safe_load_all((DEPLOY_BASE / relative).read_text()):
            if doc and doc.get("kind") == "ServiceAccount":
                doc["metadata"]["namespace"] = tenant_namespace
            if doc:
                objects.append(doc)
    return objects


def kubernetes_daemon_env(k8s: FakeK8s) -> dict[str, str]:
    """A daemon's settings for the Kubernetes runtime on this cluster: its kubeconfig, the
    tenant namespace and its own (leases, warm pool objects)."""
    return {
        "OTM_RUNTIME": "kubernetes",
        "OTM_KUBECONFIG": str(k8s.kubeconfig_path),
        "OTM_TENANT_NAMESPACE": NS,
        "OTM_DAEMON_NAMESPACE": names.DAEMON_NAMESPACE,
    }


@asynccontextmanager
async def running_otm_k8s(directory: Path, **options: Any) -> AsyncIterator[FakeK8s]:
    """`running_fake_k8s` with the tenant namespace's prerequisites installed."""
    namespaces = options.pop("namespaces", ("default", NS))
    async with running_fake_k8s(
        directory, namespaces=namespaces, objects=otm_cluster_objects(), **options
    ) as k8s:
        yield k8s


@asynccontextmanager
async def running_pod_cluster(
    directory: Path, backend: ProcessPodBackend, **options: Any
) -> AsyncIterator[FakeK8s]:
    """`running_otm_k8s` (``options`` go to it) whose kubelet runs ``backend``'s pods as real
    processes, their volumes on the server's own store; the backend is closed on exit."""
    try:
        async with running_otm_k8s(directory, pod_backend=backend, **options) as k8s:
            backend.store = k8s.server.store
            yield k8s
    finally:
        await backend.close()


@asynccontextmanager
async def running_daemon_cluster(
    directory: Path, backend: ProcessPodBackend | None = None, **options: Any
) -> AsyncIterator[FakeK8s]:
    """`running_otm_k8s` as a deployed daemon sees it: its kubeconfig is its ServiceAccount's,
    under the deployed RBAC (``options`` go to the server and may override that). With
    ``backend``, as `running_pod_cluster`."""
    options = {**daemon_rbac_options(), **options}
    cluster = (
        running_otm_k8s(directory, **options)
        if backend is None
        else running_pod_cluster(directory, backend, **options)
    )
    async with cluster as k8s:
        yield k8s


@asynccontextmanager
async def runtime_on_pods(
    directory: Path, backend: ProcessPodBackend, **options: Any
) -> AsyncIterator[KubernetesRuntime]:
    """A runtime of its own (`open_runtime`, ``options`` go to it) on `running_daemon_cluster`
    with ``backend``'s pods, bookmarks every 0.2 s."""
    async with (
        running_daemon_cluster(directory, backend, bookmark_interval=0.2) as k8s,
        open_runtime(k8s.kubeconfig_path, **options) as runtime,
    ):
        yield runtime


@asynccontextmanager
async def cluster_running_agents(
    tmp_path: Path, data_dir: Path, *, state_store: StateStore | None = None, **options: Any
) -> AsyncIterator[FakeK8s]:
    """The fake API server (``options`` go to it) with the daemons' own (embedded) state
    store under ``data_dir``, which the pods' restore/sync containers use too; or
    ``state_store`` (closed here too) when the daemons use another one (S3)."""
    store = state_store if state_store is not None else DirStateStore(data_dir / "state")
    backend = ProcessPodBackend(tmp_path / "pods", state_store=store)
    try:
        async with running_daemon_cluster(
            tmp_path, backend, namespaces=("default", NS, names.DAEMON_NAMESPACE), **options
        ) as k8s:
            yield k8s
    finally:
        await store.close()
