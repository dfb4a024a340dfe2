"""KubernetesRuntime against the fake API server (simulated kubelet, no processes)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json

import pytest
from kubernetes_asyncio import client

from daemon.adapters.runtime_k8s import KubernetesRuntime
from daemon.kube import names
from daemon.kube.client import ApiException, call_json
from daemon.kube.manifests import tenant_pod
from daemon.log_options import LogOptions
from daemon.ports import AgentFailed, InstanceEvent, InstancePhase
from tests.k8s_runtime.support import NS, POD_SETTINGS, api_pods, open_runtime
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s import KubeletConfig, SimulatedPodBackend
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.polling import eventually
from tests.support.records import sample_launch as launch


async def _secret(runtime: KubernetesRuntime, tenant_id: str) -> dict[str, str]:
    body = await call_json(
        runtime.core.read_namespaced_secret, names.tenant_secret_name(tenant_id), NS
    )
    return {k: base64.b64decode(v).decode() for k, v in body["data"].items()}


async def test_start_wait_ready_get_list(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        started = await runtime.start(launch("alice"))
        assert started.name == "alice"
        assert started.tenant_id == "alice"
        assert started.phase is InstancePhase.PENDING

        ready = await runtime.wait_ready("alice", timeout=10)
        assert ready.phase is InstancePhase.READY
        (pod,) = await api_pods(runtime, "otm/tenant=alice")
        ip = pod["status"]["podIP"]
        assert ready.webhook_url == f"http://{ip}:8787/telegram-webhook"
        assert ready.gateway_url == f"http://{ip}:18789"
        assert pod["metadata"]["labels"] == {
            "app.kubernetes.io/name": "openclaw",
            "app.kubernetes.io/managed-by": "otm",
            "otm/tenant": "alice",
        }
        assert pod["spec"]["runtimeClassName"] == "kata-qemu"

        secret = await _secret(runtime, "alice")
        config = json.loads(secret["openclaw.json"])
        assert config["channels"]["telegram"]["botToken"] == launch("alice").bot_token
        assert config["channels"]["telegram"]["webhookUrl"] == "http://127.0.0.1:9/tg/alice"
        assert secret["gateway-token"] == "gw-alice"

        assert await runtime.get("alice") == ready
        assert await runtime.get("nobody") is None
        assert [i.name for i in await runtime.list()] == ["alice"]
        assert runtime.timings["alice"].kind == "cold"
        assert runtime.timings["alice"].to_ready_s is not None


async def test_start_is_idempotent_within_and_across_replicas(k8s: FakeK8s) -> None:
    async with (
        open_runtime(k8s.kubeconfig_path) as replica_a,
        open_runtime(k8s.kubeconfig_path) as replica_b,
    ):
        first, second = await asyncio.gather(
            replica_a.start(launch("bob")), replica_b.start(launch("bob"))
        )
        assert first.name == second.name == "bob"
        again = await replica_a.start(launch("bob"))
        assert again.name == "bob"
        assert len(await api_pods(replica_a, "otm/tenant=bob")) == 1
        ready_a = await replica_a.wait_ready("bob", timeout=10)
        ready_b = await replica_b.wait_ready("bob", timeout=10)
        assert ready_a.webhook_url == ready_b.webhook_url
        # The slower replica either saw the pod in its cache or got 409 and adopted it.
        creates = [
            r for r in k8s.server.requests if r.method == "POST" and r.path.endswith("/pods")
        ]
        assert len(creates) in (1, 2)


async def test_create_conflict_adopts_the_existing_pod(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        body = tenant_pod("gina", settings=POD_SETTINGS)
        theirs = await call_json(runtime.core.create_namespaced_pod, NS, body)
        # The create path itself (as when the informer has not seen the pod yet): 409 → adopt.
        ours = await runtime._create_pod("gina", None, "hash")
        assert ours["metadata"]["uid"] == theirs["metadata"]["uid"]
        assert len(await api_pods(runtime, "otm/tenant=gina")) == 1


async def test_stop_deletes_pod_with_grace_then_secret(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await runtime.start(launch("carol"))
        await runtime.wait_ready("carol", timeout=10)
        k8s.server.clear_requests()

        await runtime.stop("carol", grace_s=7)

        assert await api_pods(runtime, "otm/tenant=carol") == []
        assert await runtime.get("carol") is None
        with pytest.raises(ApiException) as err:
            await _secret(runtime, "carol")
        assert err.value.status == 404
        deletes = [r for r in k8s.server.requests if r.method == "DELETE" and "/pods/" in r.path]
        assert deletes and all(r.query.get("gracePeriodSeconds") == "7" for r in deletes)
        await runtime.stop("carol", grace_s=7)  # idempotent


async def test_per_tenant_entries_go_with_the_tenants_pod(k8s: FakeK8s) -> None:
    """The runtime keeps nothing per tenant once it stopped: 100,000 tenants woken over a
    daemon's life must not each leave a lock and a timing behind."""
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await asyncio.gather(*(runtime.start(launch(name)) for name in ("gus", "hal", "gus")))
        await runtime.wait_ready("gus", timeout=10)
        assert runtime._locks == {}  # nobody starting now
        assert set(runtime.timings) == {"gus", "hal"}
        await asyncio.gather(runtime.stop("gus", grace_s=1), runtime.stop("hal", grace_s=1))
        assert runtime._locks == {}
        assert runtime.timings == {}


async def test_watch_reports_lifecycle(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        events: list[InstanceEvent] = []
        done = asyncio.Event()

        async def collect() -> None:
            async for event in runtime.watch():
                if event.instance.tenant_id == "dave":
                    events.append(event)
                    if event.kind == "deleted":
                        done.set()
                        return

        watcher = asyncio.create_task(collect())
        await asyncio.sleep(0)  # subscribed before the start
        await runtime.start(launch("dave"))
        await runtime.wait_ready("dave", timeout=10)
        await runtime.stop("dave", grace_s=1)
        await asyncio.wait_for(done.wait(), 10)
        await watcher
        kinds = [e.kind for e in events]
        assert kinds[0] == "added" and kinds[-1] == "deleted"
        phases = [e.instance.phase for e in events]
        assert InstancePhase.READY in phases
        assert phases[-1] is InstancePhase.GONE


async def test_wait_ready_fails_when_pod_fails_or_vanishes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A slow kubelet keeps pods Pending long enough to break them on purpose.
    async with (
        running_otm_k8s(
            tmp_path,
            namespaces=("default", NS),
            pod_backend=SimulatedPodBackend(start_delay=30),
            kubelet=KubeletConfig(start_delay=30),
        ) as k8s,
        open_runtime(k8s.kubeconfig_path) as runtime,
    ):
        await runtime.start(launch("erin"))
        waiting = asyncio.create_task(runtime.wait_ready("erin", timeout=20))
        await asyncio.sleep(0.2)
        await k8s.server.fail_pod(NS, "erin", exit_code=137, reason="OOMKilled")
        with pytest.raises(AgentFailed, match="OOMKilled"):
            await waiting

        # A failed pod is replaced by the next start.
        await runtime.start(launch("erin"))
        (pod,) = await api_pods(runtime, "otm/tenant=erin")
        assert pod["status"].get("phase") != "Failed"
        waiting = asyncio.create_task(runtime.wait_ready("erin", timeout=20))
        await asyncio.sleep(0.2)
        await k8s.server.kill_pod(NS, "erin")
        with pytest.raises(AgentFailed):
            await waiting

        await runtime.start(launch("erin"))
        with pytest.raises(TimeoutError):
            await runtime.wait_ready("erin", timeout=0.3)


async def test_logs_read_and_follow(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await runtime.start(launch("fred"))
        await runtime.wait_ready("fred", timeout=10)
        k8s.server.append_pod_log(NS, "fred", "line one\nline two\n")
        lines = [line async for line in runtime.logs("fred", follow=False, since_s=None)]
        assert lines[-2:] == ["line one", "line two"]

        follow = runtime.logs("fred", follow=True, since_s=60)
        seen: list[str] = []

        async def read_until_three() -> None:
            async for line in follow:
                seen.append(line)
                if line == "line three":
                    return

        reader = asyncio.create_task(read_until_three())
        await asyncio.sleep(0.2)
        k8s.server.append_pod_log(NS, "fred", "line three\n")
        await asyncio.wait_for(reader, 10)
        await follow.aclose()
        assert seen[-1] == "line three"

        with pytest.raises(KeyError):
            [line async for line in runtime.logs("nobody", follow=False, since_s=None)]


async def test_logs_options_reach_the_pod_log_api(k8s: FakeK8s) -> None:
    """`otm logs --timestamps / -c / --previous` on Kubernetes: the kubelet's own options."""
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await runtime.start(launch("gina"))
        await runtime.wait_ready("gina", timeout=10)
        k8s.server.append_pod_log(NS, "gina", "stamped line\n", "gateway")
        stamped = [
            line
            async for line in runtime.logs(
                "gina", follow=False, since_s=None, options=LogOptions(timestamps=True)
            )
        ]
        assert stamped[-1].endswith("Z stamped line") and stamped[-1][:4].isdigit()
        # -c sync asks the kubelet for the pod's state-sync container by its pod name.
        with pytest.raises(ApiException) as wrong:
            [
                line
                async for line in runtime.logs(
                    "gina", follow=False, since_s=None, options=LogOptions(container="sync")
                )
            ]
        assert "state-sync" in str(wrong.value)
        with pytest.raises(ApiException) as raised:
            [
                line
                async for line in runtime.logs(
                    "gina", follow=False, since_s=None, options=LogOptions(previous=True)
                )
            ]
        assert "previous terminated container" in str(raised.value)


async def test_a_tenant_secret_is_owned_by_its_pod_and_collected_with_it(k8s: FakeK8s) -> None:
    """The daemon dies mid-stop (its pod deleted, its own Secret cleanup never reached):
    the garbage collector removes the Secret, since the pod owns it."""
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await runtime.start(launch("dora"))
        await runtime.wait_ready("dora", timeout=10)
        (pod,) = await api_pods(runtime, "otm/tenant=dora")
        secret = await call_json(
            runtime.core.read_namespaced_secret, names.tenant_secret_name("dora"), NS
        )
        (owner,) = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Pod",
            "dora",
            pod["metadata"]["uid"],
        )
    async with k8s.api_client() as admin:
        await client.CoreV1Api(admin).delete_namespaced_pod("dora", NS, grace_period_seconds=0)

        async def secret_gone() -> bool:
            try:
                await client.CoreV1Api(admin).read_namespaced_secret(
                    names.tenant_secret_name("dora"), NS
                )
            except client.ApiException as exc:
                return exc.status == 404
            return False

        await eventually(secret_gone, timeout=10, what="the orphaned tenant Secret collected")


async def test_stop_with_state_sync_leaves_the_final_sync_its_time(k8s: FakeK8s) -> None:
    settings = dataclasses.replace(POD_SETTINGS, state_sync=True)
    async with open_runtime(k8s.kubeconfig_path, pod_settings=settings) as runtime:
        await runtime.start(launch("erin"))
        k8s.server.clear_requests()
        await runtime.stop("erin", grace_s=7)
        deletes = [r for r in k8s.server.requests if r.method == "DELETE" and "/pods/" in r.path]
        expected = str(7 + settings.final_sync_s)
        assert deletes and all(r.query.get("gracePeriodSeconds") == expected for r in deletes)
