"""The fake's own machinery, beyond Kubernetes conformance: the pod backend hook (with a
real process), kubelet control, fault injection, dropped watches, auth, `/_fake` HTTP
control and clean shutdown. Clients still go through kubernetes_asyncio where they can."""

# kubernetes_asyncio annotates request bodies as models but takes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch

from tests.k8s.cluster import NO_NODE, pod_manifest, watch_events
from tests.support.fake_k8s import (
    PORT_MAP_ANNOTATION,
    KubeletConfig,
    PodContext,
    PodStarted,
    pod_port_map,
)
from tests.support.fake_k8s.fixture import FakeK8s, running_fake_k8s
from tests.support.polling import eventually
from tests.support.processes import end_process

JSON = dict[str, Any]
NS = "default"
PATIENCE = 10.0


class HttpServerBackend:
    """A pod backend that runs a real process per pod (`python -m http.server` on a free
    loopback port) and publishes its port through the port-map annotation."""

    def __init__(self) -> None:
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.stops: list[tuple[str, float]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def start(self, ctx: PodContext) -> PodStarted:
        ctx.write_log(f"starting {ctx.name}\n")
        await self.gate.wait()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.processes[ctx.uid] = process
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), PATIENCE)).decode()
        port = int(re.search(r"port (\d+)", banner).group(1))  # type: ignore[union-attr]
        ctx.write_log(banner)
        return PodStarted(pod_ip="127.0.0.1", ports={8787: port}, annotations={"x/y": "z"})

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
        self.stops.append((ctx.name, grace_seconds))
        process = self.processes.pop(ctx.uid, None)
        if process is not None:
            await end_process(process, grace_s=max(grace_seconds, 1.0))


class FailingBackend:
    async def start(self, ctx: PodContext) -> PodStarted:
        raise RuntimeError("image not found")

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
        return None


class ExitingBackend:
    """Reports its workload's exit right after starting (a crashing agent)."""

    async def start(self, ctx: PodContext) -> PodStarted:
        asyncio.get_running_loop().call_later(0.05, ctx.report_exit, 3, None, "crashed")
        return PodStarted()

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
        return None


class ConfigCapturingBackend:
    """Records the env and volume files the kubelet resolves for each pod it starts."""

    def __init__(self) -> None:
        self.env: dict[str, dict[str, str]] = {}
        self.files: dict[str, dict[str, bytes]] = {}

    async def start(self, ctx: PodContext) -> PodStarted:
        self.env[ctx.name] = ctx.env()
        self.files[ctx.name] = ctx.volume_files("config")
        return PodStarted()

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
        return None


@contextlib.asynccontextmanager
async def fake_with(tmp_path: Path, **options: Any) -> AsyncIterator[tuple[FakeK8s, Any]]:
    async with running_fake_k8s(tmp_path, **options) as k8s, k8s.api_client() as api:
        yield k8s, client.CoreV1Api(api)


def ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def wait_for_pod(core: Any, name: str, rv: str, until: Any) -> list[JSON]:
    events = await watch_events(
        core.list_namespaced_pod, NS, field_selector=f"metadata.name={name}",
        resource_version=rv, until=lambda evs: until(evs[-1]["raw_object"]), patience=PATIENCE,
    )  # fmt: skip
    return [e["raw_object"] for e in events]


async def test_backend_process_is_reachable_through_the_port_map(tmp_path: Path) -> None:
    """The backend's process serves on 127.0.0.1; the pod turns Ready together with the
    port-map annotation (one event); deleting the pod stops the process with the pod's grace
    period and the kubelet then completes the deletion."""
    backend = HttpServerBackend()
    async with fake_with(tmp_path, pod_backend=backend) as (_, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("web"))
        rv = created.metadata.resource_version
        pods = await wait_for_pod(core, "web", rv, ready)
        assert [pod_port_map(p) for p in pods if ready(p)] == [pod_port_map(pods[-1])]
        pod = pods[-1]
        assert pod["status"]["podIP"] == "127.0.0.1"
        assert pod["metadata"]["annotations"]["x/y"] == "z"
        port = pod_port_map(pod)[8787]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/") as response,
        ):
            assert response.status == 200
        process = backend.processes[pod["metadata"]["uid"]]
        await core.delete_namespaced_pod("web", NS, grace_period_seconds=7)
        await wait_for_pod(core, "web", pod["metadata"]["resourceVersion"], lambda p: True)
        events = await watch_events(
            core.list_namespaced_pod, NS, resource_version=pod["metadata"]["resourceVersion"],
            until=lambda evs: evs[-1]["type"] == "DELETED", patience=PATIENCE,
        )  # fmt: skip
        assert backend.stops == [("web", 7.0)]
        assert process.returncode is not None
        assert events[-2]["raw_object"]["status"]["containerStatuses"][0]["state"]["terminated"]


async def test_pod_is_pending_while_the_backend_starts(tmp_path: Path) -> None:
    """Until `start` returns the pod is bound, Pending, its container ContainerCreating."""
    backend = HttpServerBackend()
    backend.gate.clear()
    async with fake_with(tmp_path, pod_backend=backend) as (_, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("slow"))

        def creating(pod: JSON) -> bool:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            return bool(statuses) and "waiting" in statuses[0]["state"]

        pods = await wait_for_pod(core, "slow", created.metadata.resource_version, creating)
        pending = pods[-1]
        assert pending["status"]["phase"] == "Pending" and pending["spec"]["nodeName"]
        assert pending["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == (
            "ContainerCreating"
        )
        log = await core.read_namespaced_pod_log("slow", NS, _preload_content=False)
        assert log.status == 400
        log.release()
        backend.gate.set()
        await wait_for_pod(core, "slow", pending["metadata"]["resourceVersion"], ready)


async def test_backend_log_text_is_served_as_pod_log(tmp_path: Path) -> None:
    """Text a backend writes through `ctx.write_log` is what `pods/log` returns."""
    async with fake_with(tmp_path, pod_backend=HttpServerBackend()) as (_, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("talk"))
        await wait_for_pod(core, "talk", created.metadata.resource_version, ready)
        text = await core.read_namespaced_pod_log("talk", NS)
        assert text.startswith("starting talk\nServing HTTP on 127.0.0.1 port ")


async def test_backend_start_failure_fails_the_pod(tmp_path: Path) -> None:
    """A backend whose `start` raises leaves a `restartPolicy: Never` pod Failed with reason
    StartError."""
    async with fake_with(tmp_path, pod_backend=FailingBackend()) as (_, core):
        created = await core.create_namespaced_pod(
            NS, pod_manifest("broken", restartPolicy="Never")
        )
        pods = await wait_for_pod(
            core, "broken", created.metadata.resource_version,
            lambda p: p["status"].get("phase") == "Failed",
        )  # fmt: skip
        terminated = pods[-1]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["reason"] == "StartError"
        assert terminated["message"] == "image not found"


async def test_workload_exit_reported_by_the_backend_fails_the_pod(tmp_path: Path) -> None:
    """`ctx.report_exit(code)` (the process died) makes a `restartPolicy: Never` pod Failed
    with that code."""
    async with fake_with(tmp_path, pod_backend=ExitingBackend()) as (_, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("crash", restartPolicy="Never"))
        pods = await wait_for_pod(
            core, "crash", created.metadata.resource_version,
            lambda p: p["status"].get("phase") == "Failed",
        )  # fmt: skip
        terminated = pods[-1]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def _configured_pod(name: str, secret: str) -> JSON:
    pod = pod_manifest(name, labels={"otm/tenant": "t1"})
    pod["spec"]["volumes"] = [
        {"name": "config", "secret": {"secretName": secret, "items": [
            {"key": "openclaw.json", "path": "cfg/openclaw.json"}]}},
    ]  # fmt: skip
    pod["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "shared"}}]
    pod["spec"]["containers"][0]["env"] = [
        {"name": "PLAIN", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}},
        {"name": "TENANT", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.labels['otm/tenant']"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]  # fmt: skip
    return pod


async def test_backend_gets_the_env_and_volumes_a_kubelet_would_resolve(tmp_path: Path) -> None:
    """`ctx.env()` resolves env/envFrom (Secret and ConfigMap refs, fieldRefs) and
    `ctx.volume_files()` a Secret volume's items; a missing Secret volume keeps the pod in
    ContainerCreating with FailedMount events, as on a real node."""
    backend = ConfigCapturingBackend()
    async with fake_with(tmp_path, pod_backend=backend) as (_, core):
        secret = {"metadata": {"name": "t1"},
                  "stringData": {"token": "s3cret", "openclaw.json": "{}"}}  # fmt: skip
        await core.create_namespaced_secret(NS, secret)
        await core.create_namespaced_config_map(
            NS, {"metadata": {"name": "shared"}, "data": {"REGION": "eu", "PLAIN": "0"}}
        )
        created = await core.create_namespaced_pod(NS, _configured_pod("agent", "t1"))
        await wait_for_pod(core, "agent", created.metadata.resource_version, ready)
        assert backend.env["agent"] == {
            "REGION": "eu", "PLAIN": "1", "TOKEN": "s3cret", "TENANT": "t1", "POD": "agent",
        }  # fmt: skip
        assert backend.files["agent"] == {"cfg/openclaw.json": b"{}"}
        await core.create_namespaced_pod(NS, _configured_pod("orphan", "missing"))

        found: list[str] = []

        async def failed_mount() -> bool:
            events = (await core.list_namespaced_event(NS)).items
            found[:] = [e.message for e in events if e.reason == "FailedMount"]
            return bool(found)

        await eventually(failed_mount, timeout=PATIENCE)
        assert (
            found[0] == 'MountVolume.SetUp failed for volume "config" : secret "missing" not found'
        )
        pod = await core.read_namespaced_pod("orphan", NS)
        assert pod.status.phase == "Pending" and "orphan" not in backend.env
        assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"


async def test_kill_pod_removes_it_at_once_and_stops_the_workload(tmp_path: Path) -> None:
    """`kill_pod` (node loss): DELETED without a graceful phase; the workload gets stop(0)."""
    backend = HttpServerBackend()
    async with fake_with(tmp_path, pod_backend=backend) as (k8s, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("victim"))
        pod = (await wait_for_pod(core, "victim", created.metadata.resource_version, ready))[-1]
        await k8s.server.kill_pod(NS, "victim")
        events = await watch_events(
            core.list_namespaced_pod, NS, resource_version=pod["metadata"]["resourceVersion"],
            until=lambda evs: evs[-1]["type"] == "DELETED", patience=PATIENCE,
        )  # fmt: skip
        assert [e["type"] for e in events] == ["DELETED"]
        assert backend.stops == [("victim", 0)]


async def test_set_pod_ready_flips_readiness(tmp_path: Path) -> None:
    """`set_pod_ready(False)` turns Ready and ContainersReady False; True restores them."""
    async with fake_with(tmp_path) as (k8s, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("flip"))
        pod = (await wait_for_pod(core, "flip", created.metadata.resource_version, ready))[-1]
        k8s.server.set_pod_ready(NS, "flip", False)
        rv = pod["metadata"]["resourceVersion"]
        unready = (await wait_for_pod(core, "flip", rv, lambda p: not ready(p)))[-1]
        assert unready["status"]["phase"] == "Running"
        k8s.server.set_pod_ready(NS, "flip", True)
        await wait_for_pod(core, "flip", unready["metadata"]["resourceVersion"], ready)


async def test_without_kubelet_pods_stay_unbound(tmp_path: Path) -> None:
    """With `kubelet=False` nothing schedules or runs pods: they stay unbound and Pending."""
    async with fake_with(tmp_path, kubelet=False) as (k8s, core):
        await core.create_namespaced_pod(NS, pod_manifest("idle"))
        await asyncio.sleep(0.2)
        pod = await core.read_namespaced_pod("idle", NS)
        assert pod.spec.node_name is None and pod.status.phase == "Pending"
        with pytest.raises(RuntimeError):
            await k8s.server.fail_pod(NS, "idle")


async def test_pods_bound_elsewhere_are_left_alone(tmp_path: Path) -> None:
    """The kubelet only runs pods bound to its own node."""
    async with fake_with(tmp_path, kubelet=KubeletConfig(node_name="node-a")) as (k8s, core):
        await core.create_namespaced_pod(NS, pod_manifest("other", nodeName=NO_NODE))
        await asyncio.sleep(0.2)
        pod = await core.read_namespaced_pod("other", NS)
        assert pod.status.phase == "Pending" and pod.status.container_statuses is None
        with pytest.raises(LookupError):
            k8s.server.set_pod_ready(NS, "other", True)


async def test_graceful_deletion_ends_when_the_grace_period_elapses(tmp_path: Path) -> None:
    """With no kubelet to finish it, a graceful pod deletion completes at the grace period."""
    async with fake_with(tmp_path, kubelet=False) as (_, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("slowpoke", nodeName=NO_NODE))
        await core.delete_namespaced_pod("slowpoke", NS, grace_period_seconds=1)
        events = await watch_events(
            core.list_namespaced_pod, NS, resource_version=created.metadata.resource_version,
            until=lambda evs: evs[-1]["type"] == "DELETED", patience=PATIENCE,
        )  # fmt: skip
        assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]


async def test_injected_faults_answer_with_an_error_status_then_recover(tmp_path: Path) -> None:
    """`inject_fault` answers the next matching requests with the given error Status."""
    async with fake_with(tmp_path) as (k8s, core):
        k8s.server.inject_fault(503, count=1, path_contains="/configmaps", method="GET")
        with pytest.raises(client.ApiException) as failure:
            await core.list_namespaced_config_map(NS)
        assert failure.value.status == 503
        await core.list_namespaced_pod(NS)
        listed = await core.list_namespaced_config_map(NS)
        assert listed.items == []


async def test_injected_delay_makes_a_slow_apiserver(tmp_path: Path) -> None:
    """`inject_fault(None, delay=...)` holds a request: a client timeout fires; the next
    request is served normally."""
    async with fake_with(tmp_path) as (k8s, core):
        k8s.server.inject_fault(None, delay=0.5, path_contains="/configmaps")
        with pytest.raises(TimeoutError):
            await core.list_namespaced_config_map(NS, _request_timeout=0.1)
        listed = await core.list_namespaced_config_map(NS, _request_timeout=PATIENCE)
        assert listed.items == []


async def test_dropped_watches_are_resumed_by_kubernetes_asyncio(tmp_path: Path) -> None:
    """`drop_watches` ends every stream (an apiserver restart); kubernetes_asyncio's Watch
    reconnects from the last RV it saw, so no event is lost."""
    async with fake_with(tmp_path) as (k8s, core):
        await core.create_namespaced_config_map(NS, {"metadata": {"name": "before"}})
        seen: list[tuple[str, str]] = []
        first_seen = asyncio.Event()
        stream = watch.Watch()

        async def consume() -> None:
            async for event in stream.stream(core.list_namespaced_config_map, NS):
                seen.append((event["type"], event["raw_object"]["metadata"]["name"]))
                first_seen.set()
                if len(seen) == 2:
                    return

        consumer = asyncio.create_task(consume(), name="dropped-watch-consumer")
        try:
            async with asyncio.timeout(PATIENCE):
                await first_seen.wait()
                assert k8s.server.drop_watches() == 1
                await core.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})
                await consumer
        finally:
            consumer.cancel()
            await stream.close()
        assert seen == [("ADDED", "before"), ("ADDED", "after")]
        watches = [r for r in k8s.server.requests if r.query.get("watch") == "True"]
        assert len(watches) == 2 and watches[1].query["resourceVersion"]


async def test_requests_without_the_token_are_401(tmp_path: Path) -> None:
    """The API requires the kubeconfig's bearer token."""
    async with (
        running_fake_k8s(tmp_path) as k8s,
        aiohttp.ClientSession() as session,
        session.get(f"{k8s.url}/api/v1/namespaces") as response,
    ):
        assert response.status == 401
        assert (await response.json())["reason"] == "Unauthorized"


async def test_control_endpoints_over_http(tmp_path: Path) -> None:
    """`/_fake/...` drives the same controls from another process (same bearer token)."""
    async with fake_with(tmp_path) as (k8s, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("remote"))
        await wait_for_pod(core, "remote", created.metadata.resource_version, ready)
        headers = {"Authorization": f"Bearer {k8s.server.token}"}
        async with aiohttp.ClientSession(base_url=k8s.url, headers=headers) as http:
            async with http.post(f"/_fake/pods/{NS}/remote/log", json={"text": "hi\n"}) as r:
                assert r.status == 200
            async with http.post(f"/_fake/pods/{NS}/remote/fail", json={"exit_code": 2}) as r:
                assert (await r.json())["status"]["phase"] == "Failed"
            async with http.post("/_fake/compact") as r:
                compacted = (await r.json())["resourceVersion"]
            async with http.get("/_fake/requests") as r:
                paths = [entry["path"] for entry in await r.json()]
        assert compacted == k8s.server.store.resource_version
        assert f"/api/v1/namespaces/{NS}/pods" in paths
        assert await core.read_namespaced_pod_log("remote", NS) == "hi\n"


async def test_stop_ends_open_watches_and_log_follows(tmp_path: Path) -> None:
    """Stopping the server ends open watch and log-follow streams instead of hanging."""
    async with fake_with(tmp_path) as (k8s, core):
        created = await core.create_namespaced_pod(NS, pod_manifest("tail"))
        await wait_for_pod(core, "tail", created.metadata.resource_version, ready)
        pods = await core.list_namespaced_pod(NS, watch=True, _preload_content=False)
        logs = await core.read_namespaced_pod_log("tail", NS, follow=True, _preload_content=False)
        try:
            async with asyncio.timeout(PATIENCE):
                await k8s.server.stop()
                assert await logs.content.read() == b""
                lines = (await pods.content.read()).splitlines()
        finally:
            pods.release()
            logs.release()
        assert [json.loads(line)["type"] for line in lines] == ["ADDED"]


def test_port_map_annotation_round_trips() -> None:
    """`pod_port_map` reads the annotation the kubelet writes from `PodStarted.ports`."""
    pod = {"metadata": {"annotations": {PORT_MAP_ANNOTATION: '{"8787": 40123}'}}}
    assert pod_port_map(pod) == {8787: 40123}
    assert pod_port_map({"metadata": {}}) == {}


async def test_fake_k8s_fixture_writes_a_working_kubeconfig(fake_k8s: FakeK8s) -> None:
    """The `fake_k8s` fixture: a private kubeconfig (server URL + token) that
    kubernetes_asyncio's `load_kube_config` accepts, and a client built from it."""
    kubeconfig = fake_k8s.kubeconfig_path
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    text = kubeconfig.read_text()
    assert fake_k8s.url in text and fake_k8s.server.token in text
    async with fake_k8s.api_client() as api:
        listed = await client.CoreV1Api(api).list_namespace()
    assert [ns.metadata.name for ns in listed.items] == ["default", "kube-system"]


async def test_resumed_watch_replays_only_its_own_resource_type(fake_k8s: Any) -> None:
    """A watch resumed from an old resourceVersion must not replay other kinds' changes."""
    async with fake_k8s.api_client() as api:
        core = client.CoreV1Api(api)
        pods = await core.list_namespaced_pod("default")
        start_rv = pods.metadata.resource_version
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": "not-a-pod"}, "data": {"a": "b"}}
        )
        await core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "replayed"},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        )
        kinds = []
        stream = watch.Watch().stream(
            core.list_namespaced_pod, "default", resource_version=start_rv, timeout_seconds=1
        )
        async for event in stream:
            kinds.append((event["type"], event["object"].kind, event["object"].metadata.name))
            if event["object"].metadata.name == "replayed":
                break
        assert kinds[0] == ("ADDED", "Pod", "replayed")
        assert all(kind == "Pod" for _, kind, _ in kinds)
