"""The whole daemon (``python -m daemon``) on the Kubernetes runtime.

Telegram (fake) → router → buffer → delivery → wake → KubernetesRuntime → fake API server →
fake kubelet → real stand-in agent process → reply. Then the warm pool, sized through the
admin API's live config, serves the next tenant's wake with a pre-booted pod.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from daemon.kube import names
from daemon.kube.warm_pool import claimable
from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.k8s_runtime.support import NS
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.fake_cluster import cluster_running_agents, kubernetes_daemon_env
from tests.support.fake_k8s import PODS
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.polling import eventually

REPLY_TIMEOUT = 30.0
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node for the bootstrap")


@pytest_asyncio.fixture
async def cluster(tmp_path: Path, data_dir: Path) -> AsyncIterator[FakeK8s]:
    async with cluster_running_agents(tmp_path, data_dir, bookmark_interval=0.5) as k8s:
        yield k8s


@pytest_asyncio.fixture
async def daemon(cluster: FakeK8s, start_daemon: DaemonFactory) -> Daemon:
    return await start_daemon(
        **kubernetes_daemon_env(cluster),
    )


def _pods(cluster: FakeK8s) -> list[dict]:  # type: ignore[type-arg]
    return cluster.server.store.snapshot(PODS, NS)


async def _one_warm_pod(cluster: FakeK8s, what: str) -> None:
    async def ready() -> bool:
        return sum(claimable(p) for p in _pods(cluster)) == 1

    await eventually(ready, REPLY_TIMEOUT, what)


async def test_wakes_through_kubernetes_cold_then_warm(
    daemon: Daemon, cluster: FakeK8s, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("kube", "3001:kube")
    await daemon.send_text("kube", secret, 1, 42, "hi")
    sent = await telegram.wait_for_messages("3001:kube", 2, REPLY_TIMEOUT, chat_id=42)
    assert [m.text for m in sent] == [STARTING_NOTICE, "echo: hi (#1)"]
    tenant = await daemon.tenant("kube")
    assert tenant["status"] == "running"
    assert [p["metadata"]["name"] for p in _pods(cluster)] == ["kube"]

    status, _ = await daemon.api("PATCH", "/v1/config", json={"warm_pool_target": 1})
    assert status == 200
    await _one_warm_pod(cluster, "a warm pod")

    secret = await daemon.create_tenant("kwarm", "3002:kwarm")
    await daemon.send_text("kwarm", secret, 1, 43, "hello")
    sent = await telegram.wait_for_messages("3002:kwarm", 2, REPLY_TIMEOUT, chat_id=43)
    assert sent[-1].text == "echo: hello (#1)"
    (pod,) = [p for p in _pods(cluster) if p["metadata"]["labels"].get("otm/tenant") == "kwarm"]
    assert pod["metadata"]["name"].startswith(names.WARM_POD_PREFIX)
    # The pool is replenished after the claim.
    await _one_warm_pod(cluster, "a new warm pod")
