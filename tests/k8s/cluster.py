"""The cluster under test for the conformance suite: the fake, or a real one.

With `OTM_CONFORMANCE_KUBECONFIG=/path/to/kubeconfig` the suite runs against that cluster
(each test in a fresh namespace it deletes afterwards); tests marked `fake_only` (they need
the fake's control hooks) are skipped there. Otherwise each test gets its own fake.
"""

# kubernetes_asyncio annotates request bodies as models but takes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from tests.support.fake_k8s import FakeKubernetes
from tests.support.fake_k8s.fixture import kubeconfig_api_client, running_fake_k8s

REAL_KUBECONFIG_ENV = "OTM_CONFORMANCE_KUBECONFIG"
# A real image for real clusters; the fake does not pull anything.
POD_IMAGE = "registry.k8s.io/pause:3.10"
# A scheduler no cluster runs: pods naming it stay unbound, on the fake and for real.
NO_SCHEDULER = "otm-conformance-no-scheduler"
# A node no cluster has: pods bound to it are never run by any kubelet.
NO_NODE = "otm-conformance-no-node"

JSON = dict[str, Any]
Event = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
# Real clusters put their own ConfigMap (kube-root-ca.crt) into every namespace, so lists
# and initial-state watches select the suite's objects by this label.
SUITE_SELECTOR = "otm.dev/suite=conformance"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass
class Cluster:
    api: client.ApiClient
    namespace: str  # a fresh namespace for this test
    fake: FakeKubernetes | None
    patience: float  # how long to wait for asynchronous effects (kubelet, bookmarks)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)

    def require_fake(self) -> FakeKubernetes:
        if self.fake is None:
            pytest.skip("needs the fake apiserver's control hooks")
        return self.fake


def pod_manifest(name: str = "", *, labels: dict[str, str] | None = None, **spec: Any) -> JSON:
    """A minimal valid pod; `generateName` when `name` ends with '-'."""
    meta: JSON = {"labels": labels or {}}
    meta["generateName" if name.endswith("-") else "name"] = name or "pod"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "main", "image": POD_IMAGE}], **spec},
    }


async def watch_events(
    func: Any,
    *args: Any,
    until: Callable[[list[Event]], bool],
    patience: float,
    **kwargs: Any,
) -> list[Event]:
    """Stream watch events (kubernetes_asyncio `watch.Watch`) until `until(events)` holds;
    fail with what was seen when `patience` runs out or the stream ends first."""
    events: list[Event] = []
    stream = watch.Watch()
    try:
        async with asyncio.timeout(patience):
            async for event in stream.stream(func, *args, **kwargs):
                events.append(event)
                if until(events):
                    return events
    except TimeoutError:
        pass
    finally:
        await stream.close()
    seen = [(e["type"], e["raw_object"].get("metadata", {}).get("name")) for e in events]
    raise AssertionError(f"watch condition not met; saw {seen}")


async def configmap_events(
    cluster: Cluster,
    *,
    until: Callable[[list[Event]], bool],
    patience: float | None = None,
    **query: Any,
) -> list[Event]:
    """Events of a ConfigMap watch with ``query`` in the suite's namespace, until ``until``
    holds (within ``patience``, by default the cluster's)."""
    return await watch_events(
        cluster.core.list_namespaced_config_map,
        cluster.namespace,
        until=until,
        patience=cluster.patience if patience is None else patience,
        **query,
    )


async def configmap_watch_failure(cluster: Cluster, **query: Any) -> client.ApiException:
    """The error a ConfigMap watch with ``query`` must fail with (within the cluster's
    patience): an ERROR event, which kubernetes_asyncio raises as ApiException."""
    stream = watch.Watch()
    try:
        with pytest.raises(client.ApiException) as failure:
            async with asyncio.timeout(cluster.patience):
                async for _ in stream.stream(
                    cluster.core.list_namespaced_config_map,
                    cluster.namespace,
                    timeout_seconds=5,
                    **query,
                ):
                    pass
    finally:
        await stream.close()
    return failure.value


def names(events: list[Event]) -> list[tuple[str, str]]:
    return [(e["type"], e["raw_object"]["metadata"].get("name", "")) for e in events]


@contextlib.asynccontextmanager
async def open_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    real = os.environ.get(REAL_KUBECONFIG_ENV)
    async with contextlib.AsyncExitStack() as stack:
        fake: FakeKubernetes | None = None
        if real:
            kubeconfig = Path(real)
        else:
            k8s = await stack.enter_async_context(running_fake_k8s(tmp_path, bookmark_interval=0.2))
            fake, kubeconfig = k8s.server, k8s.kubeconfig_path
        api = await stack.enter_async_context(kubeconfig_api_client(kubeconfig))
        namespace = f"otm-conformance-{secrets.token_hex(3)}"
        core = client.CoreV1Api(api)
        await core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        )
        try:
            yield Cluster(api, namespace, fake, patience=5.0 if fake else 120.0)
        finally:
            with contextlib.suppress(client.ApiException):
                await core.delete_namespace(namespace, grace_period_seconds=0)


async def expect_status(call: Any, code: int) -> JSON:
    """Await an API call that must fail with `code`; return its Status body."""
    with pytest.raises(client.ApiException) as failure:
        await call
    assert failure.value.status == code
    body: JSON = json.loads(failure.value.body or b"{}")
    assert body["kind"] == "Status" and body["code"] == code
    return body


def configmap(name: str, labels: dict[str, str] | None = None, **extra: Any) -> JSON:
    meta = {"name": name, "labels": {"otm.dev/suite": "conformance", **(labels or {})}, **extra}
    return {"metadata": meta, "data": {"k": "v"}}


def unscheduled_pod(name: str, **kwargs: Any) -> JSON:
    """A pod no scheduler picks up: it stays unbound and Pending on any cluster."""
    return pod_manifest(name, schedulerName=NO_SCHEDULER, **kwargs)


async def merge_patch_configmap(
    cluster: Cluster, namespace: str, name: str, patch: JSON
) -> client.V1ConfigMap:
    """PATCH as application/merge-patch+json (a dict body is otherwise sent as strategic
    merge; kubernetes_asyncio's annotations omit its `_content_type` keyword)."""
    return await cluster.core.patch_namespaced_config_map(  # type: ignore[call-arg]
        name, namespace, patch, _content_type=MERGE_PATCH
    )


async def list_rv(cluster: Cluster) -> str:
    listed = await cluster.core.list_namespaced_config_map(cluster.namespace)
    return str(listed.metadata.resource_version)


async def labelled_configmaps(cluster: Cluster) -> None:
    for name, labels in [
        ("a1", {"app": "a"}),
        ("a2", {"app": "a", "tier": "web"}),
        ("b1", {"app": "b"}),
        ("c1", {"app": "c"}),
        ("n1", {}),
    ]:
        await cluster.core.create_namespaced_config_map(cluster.namespace, configmap(name, labels))


async def configmap_names(cluster: Cluster, label_selector: str) -> list[str]:
    selector = f"{SUITE_SELECTOR},{label_selector}" if label_selector else SUITE_SELECTOR
    listed = await cluster.core.list_namespaced_config_map(
        cluster.namespace, label_selector=selector
    )
    return sorted(item.metadata.name for item in listed.items)
