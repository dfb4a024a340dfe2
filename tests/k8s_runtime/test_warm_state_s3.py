"""A warm claim on Kubernetes with the S3 state store: the daemon vends credentials scoped to
the tenant's prefix (STS AssumeRole with a session policy, against moto), the claimed pod's
sync sidecar (emulated by the fake kubelet with exactly the credentials the bind carried)
restores the tenant's agent and workspace into the pre-booted gateway's state dir, and the
final sync writes them back; the refresher re-vends credentials and the sidecar uses the new
ones. Session policies are not enforced by moto (its assumed-role access check reads only
the role's policies: moto/iam/access_control.py ``AssumedRoleAccessKey.collect_policies``);
tenant A versus tenant B is proven by policy evaluation in
tests/deploy/test_vended_credentials_iam.py, and here what moto does enforce: the vended
session holds the deploy/iam tenant-state role's permissions and nothing outside them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import botocore.config
import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.adapters.state_s3 import S3StateStore
from daemon.kube.manifests import PodSettings
from daemon.kube.tenant_credentials import ANNOTATION_EXPIRES, CredentialVendor
from daemon.metrics import AGENT_START_PHASES, PHASE_FIRST_REPLY, WARM, Metrics
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.deploy.iam_docs import create_state_role, load
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import NS, api_pods, one_warm_pod, open_runtime
from tests.support.fake_cluster import running_daemon_cluster, runtime_on_pods
from tests.support.records import sample_launch as launch

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node for the bootstrap")
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "otm-tenant-state"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/otm-tenant-state"
SEED = {
    "tenants/alice/state/agents/main/agent/openclaw-agent.sqlite": b"alice history",
    "tenants/alice/state/agents/main/agent/counter.json": b'{"count": 41}',
    "tenants/alice/workspace/AGENTS.md": b"alice notes",
    "tenants/alice/state/openclaw.sqlite": b"alice global db",
    "tenants/bob/state/agents/main/agent/openclaw-agent.sqlite": b"bob history",
}


def _client(service: str, url: str, **creds: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", **creds)


def _set_auth(url: str, count: str) -> None:
    """moto's INITIAL_NO_AUTH_ACTION_COUNT: after ``count`` more requests, IAM is enforced."""
    req = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@pytest.fixture
def aws(moto_url: str) -> Iterator[str]:
    s3 = _client("s3", moto_url)
    s3.create_bucket(Bucket=BUCKET)
    for key, body in SEED.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    create_state_role(_client("iam", moto_url), BUCKET)
    yield moto_url


def _vendor(url: str) -> CredentialVendor:
    return CredentialVendor(_client("sts", url), role_arn=ROLE_ARN, bucket=BUCKET, duration_s=900)


def _objects(url: str) -> dict[str, bytes]:
    s3 = _client("s3", url)
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


@dataclass
class Cluster:
    runtime: KubernetesRuntime
    backend: ProcessPodBackend
    metrics: Metrics
    telegram: FakeTelegram


@pytest_asyncio.fixture
async def cluster(tmp_path: Path, aws: str) -> AsyncIterator[Cluster]:
    backend = ProcessPodBackend(tmp_path / "pods", warm_s3=(aws, BUCKET))
    settings = PodSettings(
        namespace=NS,
        image="openclaw:test",
        state_sync=True,
        s3_bucket=BUCKET,
        s3_endpoint_url=aws,
        warm_telegram="placeholder",
    )
    metrics = Metrics()
    async with (
        FakeTelegram() as telegram,
        runtime_on_pods(
            tmp_path,
            backend,
            warm=True,
            api_root=telegram.base_url,
            pod_settings=settings,
            credentials=_vendor(aws),
            metrics=metrics,
        ) as runtime,
    ):
        yield Cluster(runtime, backend, metrics, telegram)


def _tenant_env(state_dir: Path) -> dict[str, str]:
    import shlex

    text = (state_dir.parent / "bind" / "tenant.env").read_text()
    return {k: shlex.split(v)[0] for k, _, v in (line.partition("=") for line in text.splitlines())}


async def test_warm_claim_restores_and_syncs_the_tenants_state_with_scoped_credentials(
    cluster: Cluster, aws: str
) -> None:
    runtime, backend = cluster.runtime, cluster.backend
    assert runtime.refresher is not None
    await one_warm_pod(runtime)

    alice = launch("alice")
    started = await runtime.start(alice)
    assert started.name.startswith("warm-")  # the pre-booted pod, no new pod
    ready = await runtime.wait_ready("alice", timeout=30)
    # Every phase of the warm start the runtime times was measured (the in-pod ones by the
    # bootstrap); the first reply is timed by the bench (bench/openclaw_wake.py) only.
    for phase in (p for p in AGENT_START_PHASES if p != PHASE_FIRST_REPLY):
        count = cluster.metrics.registry.get_sample_value(
            "otm_agent_start_phase_seconds_count", {"phase": phase, "path": WARM}
        )
        assert count == 1, phase
    (pod,) = await api_pods(runtime, "otm/tenant=alice")
    state_dir = backend._pods[pod["metadata"]["uid"]].state_dir

    # Restored: the tenant's agent and workspace, never its global DB over the warm one.
    agent_db = state_dir / "agents/main/agent/openclaw-agent.sqlite"
    assert agent_db.read_bytes() == b"alice history"
    assert (state_dir / "workspace/AGENTS.md").read_bytes() == b"alice notes"
    assert not (state_dir / "openclaw.sqlite").exists()
    assert not (state_dir / "agents/main/agent/bob").exists()
    # The sidecar's credentials are a vended STS session, not the pod's own.
    first = _tenant_env(state_dir)
    assert first["S3_PREFIX"] == "tenants/alice/" and first["AWS_SESSION_TOKEN"]
    assert first["AWS_ACCESS_KEY_ID"] != "testing"
    assert pod["metadata"]["annotations"][ANNOTATION_EXPIRES] == first["OTM_CREDENTIALS_EXPIRE_AT"]
    # Ready means the tenant's agent answers on its webhook with the tenant's secret.
    assert ready.webhook_url is not None
    update = make_text_update(1, chat_id=4242, text="hello")
    headers = {"X-Telegram-Bot-Api-Secret-Token": alice.webhook_secret}
    async with (
        aiohttp.ClientSession() as session,
        session.post(ready.webhook_url, json=update, headers=headers) as resp,
    ):
        assert resp.status == 200
    # The bound gateway (the same process, hot-reloaded) continues the tenant's history.
    (reply,) = await cluster.telegram.wait_for_messages(alice.bot_token, 1, timeout=30)
    assert reply.text == "echo: hello (#42)"

    # The agent writes; the leader refreshes the credentials before they expire.
    (state_dir / "agents/main/agent/turn.txt").write_bytes(b"a new turn")
    (state_dir / "workspace/MEMORY.md").write_bytes(b"remembered")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await runtime.refresher.refresh_due(later) == 1
    second = _tenant_env(state_dir)
    assert second["AWS_ACCESS_KEY_ID"] != first["AWS_ACCESS_KEY_ID"]
    (pod,) = await api_pods(runtime, "otm/tenant=alice")
    assert pod["metadata"]["annotations"][ANNOTATION_EXPIRES] == second["OTM_CREDENTIALS_EXPIRE_AT"]

    await runtime.stop("alice", grace_s=5)  # the final sync, with the refreshed credentials
    objects = _objects(aws)
    assert objects["tenants/alice/state/agents/main/agent/turn.txt"] == b"a new turn"
    assert objects["tenants/alice/workspace/MEMORY.md"] == b"remembered"
    counter = objects["tenants/alice/state/agents/main/agent/counter.json"]
    assert json.loads(counter)["count"] == 42
    assert objects["tenants/alice/state/openclaw.sqlite"] == b"alice global db"
    assert objects["tenants/bob/state/agents/main/agent/openclaw-agent.sqlite"] == b"bob history"
    # Nothing of the warm gateway's own state reached the tenant's prefix.
    assert not [k for k in objects if "agents/warm" in k or k.endswith("agent-stub.sqlite")]


async def test_without_credentials_a_wake_never_claims_a_warm_pod(tmp_path: Path) -> None:
    """S3 state but no tenant-state role: a claimed warm pod could not reach the tenant's
    state, so the wake starts cold instead of failing the tenant."""
    settings = PodSettings(namespace=NS, image="openclaw:test", state_sync=True)
    async with (
        running_daemon_cluster(tmp_path) as k8s,
        open_runtime(k8s.kubeconfig_path, warm=True, pod_settings=settings) as runtime,
    ):
        pool = await one_warm_pod(runtime)
        started = await runtime.start(launch("alice"))
        assert started.name == "alice" and pool.claims == 0


def test_moto_enforces_the_tenant_state_role_on_vended_credentials(aws: str) -> None:
    import asyncio

    creds = asyncio.run(_vendor(aws).vend("alice")).env()
    session = {
        "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": creds["AWS_SESSION_TOKEN"],
    }
    _set_auth(aws, "0")
    try:
        s3 = _client("s3", aws, **session)
        s3.put_object(Bucket=BUCKET, Key="tenants/alice/state/x", Body=b"1")
        assert s3.get_object(Bucket=BUCKET, Key="tenants/alice/state/x")["Body"].read() == b"1"
        s3.list_objects_v2(Bucket=BUCKET, Prefix="tenants/alice/")
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.put_object(Bucket=BUCKET, Key="other/x", Body=b"1")
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.delete_bucket(Bucket=BUCKET)
        with pytest.raises(ClientError):
            _client("dynamodb", aws, **session).list_tables()
        forged = {**session, "aws_session_token": "forged"}
        with pytest.raises(ClientError):
            _client("s3", aws, **forged).get_object(Bucket=BUCKET, Key="tenants/alice/state/x")
    finally:
        _set_auth(aws, "inf")
    # the document moto enforced
    assert load("tenant-state-policy.json", bucket=BUCKET, account=ACCOUNT)


async def test_a_credential_failure_starts_cold_and_claims_nothing(
    tmp_path: Path, aws: str
) -> None:
    """STS unreachable: the wake starts the tenant's own pod and claims no warm pod it
    could not give credentials to (a claimed, unbound pod would hold the tenant's label)."""
    settings = PodSettings(namespace=NS, image="openclaw:test", state_sync=True)
    broken = CredentialVendor(
        boto3.client(
            "sts",
            endpoint_url="http://127.0.0.1:9",
            region_name="us-east-1",
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1),
        ),
        role_arn=ROLE_ARN,
        bucket=BUCKET,
    )
    async with (
        running_daemon_cluster(tmp_path) as k8s,
        open_runtime(
            k8s.kubeconfig_path, warm=True, pod_settings=settings, credentials=broken
        ) as runtime,
    ):
        pool = await one_warm_pod(runtime)
        started = await runtime.start(launch("alice"))
        assert started.name == "alice" and pool.claims == 0
        assert pool.available() == 1


async def test_unprocessed_updates_in_the_saved_global_db_send_the_tenant_cold(
    tmp_path: Path, aws: str
) -> None:
    """A warm gateway keeps its own global database: updates the tenant's agent acked but
    never processed would be lost, so such a tenant starts cold (its pod opens its own)."""
    db = tmp_path / "agent-stub.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE updates (update_id INTEGER, body TEXT, done INTEGER)")
        conn.execute("INSERT INTO updates VALUES (7, '{}', 0)")
    store = await S3StateStore.open(BUCKET, "us-east-1", aws)
    settings = PodSettings(namespace=NS, image="openclaw:test", state_sync=True)
    try:
        await store.put("alice", "state/agent-stub.sqlite", db.read_bytes())
        async with (
            running_daemon_cluster(tmp_path) as k8s,
            open_runtime(
                k8s.kubeconfig_path,
                warm=True,
                pod_settings=settings,
                credentials=_vendor(aws),
                state_store=store,
            ) as runtime,
        ):
            pool = await one_warm_pod(runtime)
            started = await runtime.start(launch("alice"))
            assert started.name == "alice" and pool.claims == 0
    finally:
        await store.close()
