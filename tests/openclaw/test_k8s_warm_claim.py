"""A real OpenClaw in a Kubernetes warm pod (fake API server + its kubelet running real
processes): the pod's bootstrap boots the gateway on the warm config at pod start; a wake
claims the pod, the daemon vends the tenant's S3 credentials (moto STS), the emulated sync
sidecar restores the tenant's ``agents/main/`` and workspace into the running gateway's
state dir, and the bootstrap's one atomic config rewrite binds it (hot reload, the same
gateway process). Two wakes of one tenant: the second, on a second warm pod, answers with
the history the first wrote (synced to S3 at stop, restored at claim).

Costs two gateway boots and two turns (about 60 CPU-seconds); run alone with -m openclaw.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
import pytest_asyncio

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.agent.openclaw_config import ModelProvider
from daemon.kube import manifests as m
from daemon.kube.manifests import PodSettings
from daemon.kube.tenant_credentials import CredentialVendor
from daemon.kube.warm_pool import hooks_token_for
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.deploy.iam_docs import create_state_role
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import NS, api_pods
from tests.support.agent_stub import SECRET_HEADER
from tests.support.fake_cluster import runtime_on_pods
from tests.support.openclaw import NODE_BIN_DIR, OPENCLAW_DIR, OPENCLAW_ENTRY, openclaw_installed
from tests.support.records import sample_launch as launch
from tests.support.servers import telegram_and_llm

pytestmark = [
    pytest.mark.openclaw,
    pytest.mark.skipif(
        not openclaw_installed() or shutil.which("node") is None,
        reason=f"OpenClaw is not installed in {OPENCLAW_DIR}: run scripts/install-openclaw.sh",
    ),
    pytest.mark.timeout(600),
]
BUCKET = "otm-tenant-state"
ROLE_ARN = "arn:aws:iam::123456789012:role/otm-tenant-state"
CHAT = 4242


@pytest_asyncio.fixture
async def aws(moto_url: str) -> AsyncIterator[str]:
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
    create_state_role(boto3.client("iam", endpoint_url=moto_url), BUCKET)
    yield moto_url


async def _warm_pod(runtime: KubernetesRuntime) -> None:
    pool = runtime.warm_pool
    assert pool is not None
    # A real boot on a shared 2-core machine: up to a few minutes under load.
    await runtime.informer.wait_for(lambda _: True if pool.available() == 1 else None, 240)


async def _wake_and_talk(
    runtime: KubernetesRuntime, tg: FakeTelegram, http: aiohttp.ClientSession, n: int
) -> tuple[str, float, float]:
    """Claim + bind, post one message; (reply text, claim→ready s, post→reply s)."""
    alice = launch("alice")
    claimed = time.monotonic()
    started = await runtime.start(alice)
    assert started.name.startswith("warm-"), "no warm pod was claimed"
    ready = await runtime.wait_ready("alice", timeout=120)
    ready_s = time.monotonic() - claimed
    assert ready.webhook_url is not None
    update = make_text_update(1000 + n, CHAT, f"message {n}")
    posted = time.monotonic()
    async with http.post(
        ready.webhook_url, json=update, headers={SECRET_HEADER: alice.webhook_secret}
    ) as resp:
        assert resp.status == 200
    replies = await tg.wait_for_messages(alice.bot_token, n, timeout=120, chat_id=CHAT)
    return html.unescape(replies[n - 1].text), ready_s, time.monotonic() - posted


async def test_warm_pods_bind_a_real_gateway_and_carry_history_through_s3(
    tmp_path: Path, aws: str
) -> None:
    gateway = [str(NODE_BIN_DIR / "node"), str(OPENCLAW_ENTRY), "gateway", "--allow-unconfigured"]
    # A real boot on a shared 2-core machine: minutes to /healthz under load.
    backend = ProcessPodBackend(
        tmp_path / "pods", warm_s3=(aws, BUCKET), warm_gateway=gateway, startup_timeout_s=240
    )
    settings = PodSettings(namespace=NS, image="openclaw:test", state_sync=True, s3_bucket=BUCKET)
    vendor = CredentialVendor(
        boto3.client("sts", endpoint_url=aws), role_arn=ROLE_ARN, bucket=BUCKET, duration_s=900
    )
    async with (
        telegram_and_llm() as (tg, llm),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        provider = ModelProvider(
            name="stub", base_url=llm.base_url, model_id="stub-model", api_key="stub-key"
        )

        def render_warm(bind_token: str) -> dict[str, Any]:
            return m.render_warm_pod_config(
                settings,
                api_root=tg.base_url,
                model_provider=provider,
                gateway_token="replaced-at-boot",
                hooks_token=hooks_token_for(bind_token),
            )

        async with runtime_on_pods(
            tmp_path,
            backend,
            warm=True,
            api_root=tg.base_url,
            pod_settings=settings,
            credentials=vendor,
            render_warm_config=render_warm,
        ) as runtime:
            pool = runtime.warm_pool
            assert pool is not None
            pool.target = 1  # the pool manager refills after each claim
            manager = asyncio.create_task(pool.run(), name="warm-pool-under-test")
            try:
                await _scenario(runtime, tg, http, aws)
            finally:
                manager.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await manager


async def _scenario(
    runtime: KubernetesRuntime, tg: FakeTelegram, http: aiohttp.ClientSession, aws: str
) -> None:
    await _warm_pod(runtime)
    (warm,) = await api_pods(runtime, m.WARM_SELECTOR)
    first, ready1, reply1 = await _wake_and_talk(runtime, tg, http, 1)
    assert "message 1" in first and first.endswith("(prior user turns: 0)")
    (bound,) = await api_pods(runtime, "otm/tenant=alice")
    assert bound["metadata"]["uid"] == warm["metadata"]["uid"]
    # One gateway process per pod: the bind did not start another.
    lines = [x async for x in runtime.logs("alice", follow=False, since_s=None)]
    assert sum("booting the warm gateway" in x for x in lines) == 1
    assert any("config written for alice" in x for x in lines)
    await runtime.stop("alice", grace_s=30)
    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=aws)
        .list_objects_v2(Bucket=BUCKET)
        .get("Contents", [])
    ]
    assert any(k.startswith("tenants/alice/state/agents/main/") for k in keys)

    await _warm_pod(runtime)
    second, ready2, reply2 = await _wake_and_talk(runtime, tg, http, 2)
    # The restored history: the first turn survived sleep, S3 and a new pod.
    assert "message 2" in second and second.endswith("(prior user turns: 1)")
    print(
        f"warm claim→ready {ready1:.1f}s / {ready2:.1f}s; "
        f"post→reply {reply1:.1f}s / {reply2:.1f}s (restored history)"
    )
    await runtime.stop("alice", grace_s=30)
