"""Helpers for the Kubernetes runtime tests: a runtime wired to the fake API server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.coordination import Coordination
from daemon.kube.client import call_json, open_api_client
from daemon.kube.informer import PodInformer
from daemon.kube.manifests import PodSettings
from daemon.kube.tenant_credentials import CredentialVendor
from daemon.kube.warm_pool import WarmPool
from daemon.metrics import Metrics
from daemon.ports import StateStore
from tests.support.records import sample_launch

NS = "otm-tenants"
launch = sample_launch  # the Kubernetes tiers' name for it
# No S3 in these tests: the restore/sync containers are left out (their specs are tested
# as dicts in test_manifests.py).
POD_SETTINGS = PodSettings(namespace=NS, image="openclaw:test", state_sync=False)


@contextlib.asynccontextmanager
async def open_runtime(
    kubeconfig: Path,
    *,
    warm: bool = False,
    coordination: Coordination | None = None,
    api_root: str = "http://127.0.0.1:9",
    pod_settings: PodSettings = POD_SETTINGS,
    metrics: Metrics | None = None,
    credentials: CredentialVendor | None = None,
    render_warm_config: Callable[[str], dict[str, Any]] | None = None,
    state_store: StateStore | None = None,
) -> AsyncIterator[KubernetesRuntime]:
    """One "replica": its own ApiClient, informer, (warm pool) and runtime."""
    api = await open_api_client(str(kubeconfig))
    session = aiohttp.ClientSession()
    informer = PodInformer(api, pod_settings.namespace)
    runtime: KubernetesRuntime | None = None
    try:
        await informer.start()
        pool = (
            WarmPool(
                api=api,
                informer=informer,
                pod_settings=pod_settings,
                coordination=coordination,
                metrics=metrics,
                render_warm_config=render_warm_config,
            )
            if warm
            else None
        )
        runtime = KubernetesRuntime(
            api=api,
            informer=informer,
            pod_settings=pod_settings,
            session=session,
            webhook_url_for=lambda t: f"http://127.0.0.1:9/tg/{t}",
            api_root=api_root,
            warm_pool=pool,
            metrics=metrics,
            credentials=credentials,
            state_store=state_store,
        )
        yield runtime
    finally:
        if runtime is not None:
            await runtime.close()
        else:
            await informer.stop()
            await api.close()
        await session.close()


async def api_pods(runtime: KubernetesRuntime, selector: str = "") -> list[dict[str, Any]]:
    """Pods as the API server has them (not the informer's view)."""
    body = await call_json(
        runtime.core.list_namespaced_pod, runtime.namespace, label_selector=selector
    )
    return list(body["items"])


async def one_warm_pod(runtime: KubernetesRuntime, timeout_s: float = 30) -> WarmPool:
    """The runtime's warm pool, filled to one available pod."""
    pool = runtime.warm_pool
    assert pool is not None
    pool.target = 1
    await pool.reconcile()
    await runtime.informer.wait_for(lambda _: True if pool.available() == 1 else None, timeout_s)
    return pool
