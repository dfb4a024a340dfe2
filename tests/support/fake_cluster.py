"""A fake Kubernetes cluster whose kubelet runs stand-in agents as real processes, for the
tests that run whole daemons on the Kubernetes runtime (replicas, loops, end to end)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from daemon.adapters.state_dir import DirStateStore
from daemon.kube import names
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import NS
from tests.support.daemon_rbac import daemon_rbac_options
from tests.support.fake_k8s.fixture import FakeK8s, running_fake_k8s


@asynccontextmanager
async def cluster_running_agents(
    tmp_path: Path, data_dir: Path, **options: Any
) -> AsyncIterator[FakeK8s]:
    """The fake API server (``options`` go to it) with the daemons' own (embedded) state
    store under ``data_dir``, which the pods' restore/sync containers use too."""
    store = DirStateStore(data_dir / "state")
    backend = ProcessPodBackend(tmp_path / "pods", state_store=store)
    try:
        async with running_fake_k8s(
            tmp_path,
            namespaces=("default", NS, names.DAEMON_NAMESPACE),
            pod_backend=backend,
            **{**daemon_rbac_options(), **options},
        ) as k8s:
            backend.store = k8s.server.store
            yield k8s
    finally:
        await backend.close()
        await store.close()
