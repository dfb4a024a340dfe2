"""Warm and cold wakes with real agent processes behind the fake kubelet.

A warm wake claims a pod whose Node bootstrap (daemon/kube/warm_bootstrap.py) is already up, and
binds it: the bootstrap writes the tenant's openclaw.json and starts the agent. A cold wake
creates ``openclaw-{id}``, whose agent reads the config from the tenant's Secret. Both must
end with the tenant's own agent answering on the instance's webhook URL.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.agent.openclaw_config import API_KEY_PLACEHOLDER, ModelProvider
from daemon.kube import manifests as m
from daemon.ports import AgentFailed, InstancePhase
from daemon.telegram import SECRET_HEADER
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import api_pods, one_warm_pod
from tests.support.fake_cluster import runtime_on_pods
from tests.support.records import sample_launch as launch

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node for the bootstrap")


@pytest_asyncio.fixture
async def runtime(tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[KubernetesRuntime]:
    backend = ProcessPodBackend(tmp_path / "pods")
    async with runtime_on_pods(tmp_path, backend, warm=True, api_root=telegram.base_url) as rt:
        yield rt


async def _post_update(webhook_url: str, secret: str, update_id: int) -> int:
    update = make_text_update(update_id, chat_id=4242, text="hello")
    async with (
        aiohttp.ClientSession() as session,
        session.post(webhook_url, json=update, headers={SECRET_HEADER: secret}) as resp,
    ):
        return resp.status


async def test_warm_wake_binds_a_booted_pod(
    runtime: KubernetesRuntime, telegram: FakeTelegram
) -> None:
    pool = await one_warm_pod(runtime)
    alice = launch("alice")

    started = await runtime.start(alice)
    assert started.name.startswith("warm-")
    assert runtime.timings["alice"].kind == "warm"
    assert pool.claims == 1

    ready = await runtime.wait_ready("alice", timeout=30)
    assert ready.phase is InstancePhase.READY and ready.tenant_id == "alice"
    assert not ready.warm
    assert runtime.timings["alice"].to_ready_s is not None
    # The bound agent runs the tenant's config: its webhook registration and its secret.
    registration = telegram.webhooks[alice.bot_token]
    assert registration.url == "http://127.0.0.1:9/tg/alice"
    assert registration.secret_token == alice.webhook_secret
    assert ready.webhook_url is not None
    assert await _post_update(ready.webhook_url, alice.webhook_secret, 1) == 200
    assert await _post_update(ready.webhook_url, "wrong", 2) == 401
    activity = await runtime.activity("alice")
    assert activity is not None

    lines = [line async for line in runtime.logs("alice", follow=False, since_s=None)]
    assert any("otm-bootstrap: bound to alice" in line for line in lines)
    # Pre-booted and hot-reloaded: one gateway for the pod's life, none started at the bind.
    assert sum("booting the warm gateway" in line for line in lines) == 1
    assert not any("gateway exited" in line for line in lines)

    await runtime.stop("alice", grace_s=5)
    assert await runtime.get("alice") is None
    assert await api_pods(runtime, "otm/tenant=alice") == []


async def test_a_warm_bind_points_the_agent_at_the_model_gateway_with_the_tenants_key(
    runtime: KubernetesRuntime, tmp_path: Path
) -> None:
    runtime.model_provider = ModelProvider(
        name="otm",
        base_url="http://127.0.0.1:9/v1",
        model_id="stub-model",
        api_key=API_KEY_PLACEHOLDER,
    )
    await one_warm_pod(runtime)
    started = await runtime.start(launch("alice", model_key="otm-mk-alice.k1.secret"))
    assert started.name.startswith("warm-")
    await runtime.wait_ready("alice", timeout=30)
    (pod,) = await api_pods(runtime, "otm/tenant=alice")
    bound = json.loads(
        (tmp_path / "pods" / pod["metadata"]["uid"] / "bind" / "openclaw.json").read_text()
    )
    provider = bound["models"]["providers"]["otm"]
    assert (provider["baseUrl"], provider["apiKey"]) == (
        "http://127.0.0.1:9/v1",
        "otm-mk-alice.k1.secret",
    )
    await runtime.stop("alice", grace_s=5)


async def test_cold_wake_when_the_pool_is_empty(
    runtime: KubernetesRuntime, telegram: FakeTelegram
) -> None:
    bob = launch("bob")
    started = await runtime.start(bob)
    assert started.name == "bob"
    assert runtime.timings["bob"].kind == "cold"
    ready = await runtime.wait_ready("bob", timeout=30)
    assert telegram.webhooks[bob.bot_token].url == "http://127.0.0.1:9/tg/bob"
    assert ready.webhook_url is not None
    assert await _post_update(ready.webhook_url, bob.webhook_secret, 1) == 200
    await runtime.stop("bob", grace_s=5)
    assert await api_pods(runtime, "otm/tenant=bob") == []


async def test_a_launch_with_its_own_api_root_points_warm_and_cold_agents_there(
    runtime: KubernetesRuntime, telegram: FakeTelegram
) -> None:
    """A polling tenant's launch names the daemon's Bot API relay (here a second fake): the
    agent's Bot API calls go there, warm bind and cold Secret alike, not to the default."""
    async with FakeTelegram() as relay:
        await one_warm_pod(runtime)
        for tenant in ("dora", "emil"):  # the first claims the warm pod, the second starts cold
            tenant_launch = launch(tenant, api_root=relay.base_url)
            started = await runtime.start(tenant_launch)
            assert started.name.startswith("warm-") == (tenant == "dora")
            await runtime.wait_ready(tenant, timeout=30)
            assert relay.calls(tenant_launch.bot_token, "setWebhook")
            assert not telegram.calls(tenant_launch.bot_token)
            await runtime.stop(tenant, grace_s=5)


async def test_a_second_bind_for_another_tenant_is_refused(runtime: KubernetesRuntime) -> None:
    pool = await one_warm_pod(runtime)
    await runtime.start(launch("carol"))
    await runtime.wait_ready("carol", timeout=30)
    (pod,) = await api_pods(runtime, "otm/tenant=carol")
    # A bound pod is carol's for life: a bind for another tenant is refused (409), even
    # with the pod's own token, and the pod keeps serving the tenant it was bound to.
    body = m.bind_request("mallory", {"x": 1})
    with pytest.raises(AgentFailed, match="409"):
        await runtime._post_bind(pod, body, await pool.pod_bind_token(pod), expect=202)
    # The namespace key itself is not a pod's token.
    with pytest.raises(AgentFailed, match="401"):
        await runtime._post_bind(pod, body, await pool.bind_token(), expect=202)
    instance = await runtime.get("carol")
    assert instance is not None and instance.phase == InstancePhase.READY
    (still,) = await api_pods(runtime, "otm/tenant=carol")
    assert still["metadata"]["name"] == pod["metadata"]["name"]
