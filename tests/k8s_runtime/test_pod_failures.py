"""Pods that cannot run fail a start fast (they are not "still pending"): crash loops,
image pull errors, missing configuration, failing init containers, against the fake's
kubelet, which retries them with back-off as a real one does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon.kube import manifests as m
from daemon.kube import names
from daemon.kube.client import call_json
from daemon.ports import AgentFailed, InstancePhase
from tests.k8s_runtime.support import NS, POD_SETTINGS, api_pods, open_runtime
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s import KubeletConfig, PodContext, SimulatedPodBackend
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.polling import eventually
from tests.support.records import sample_launch as launch

# Generous: a wake that hangs instead of failing fails the test with TimeoutError.
WAKE_TIMEOUT_S = 20.0


async def test_unpullable_image_fails_the_wake_with_the_reason(k8s: FakeK8s) -> None:
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await runtime.start(launch("ivy", image="registry.invalid/openclaw:gone"))
        with pytest.raises(AgentFailed, match=r"gateway: (ErrImagePull|ImagePullBackOff)"):
            await runtime.wait_ready("ivy", WAKE_TIMEOUT_S)
        # The broken pod is no instance, and the next start replaces it.
        assert await runtime.get("ivy") is None
        await runtime.start(launch("ivy"))
        ready = await runtime.wait_ready("ivy", WAKE_TIMEOUT_S)
        assert ready.phase is InstancePhase.READY


async def test_missing_secret_key_fails_the_wake(tmp_path: Path) -> None:
    """The tenant Secret lost a key the pod's env names: CreateContainerConfigError."""
    # No scheduler: the pod waits unbound while the test breaks its Secret, then is bound.
    async with (
        running_otm_k8s(tmp_path, kubelet=KubeletConfig(schedule=False)) as k8s,
        open_runtime(k8s.kubeconfig_path) as runtime,
    ):
        await runtime.start(launch("jay"))
        name = names.tenant_secret_name("jay")
        secret = await call_json(runtime.core.read_namespaced_secret, name, NS)
        del secret["data"][m.SECRET_GATEWAY_TOKEN]
        await call_json(runtime.core.replace_namespaced_secret, name, NS, secret)
        binding = {"metadata": {"name": "jay"}, "target": {"kind": "Node", "name": "fake-node"}}
        await call_json(runtime.core.create_namespaced_pod_binding, "jay", NS, binding)
        with pytest.raises(AgentFailed, match="CreateContainerConfigError: couldn't find key"):
            await runtime.wait_ready("jay", WAKE_TIMEOUT_S)


class FailingRestore(SimulatedPodBackend):
    """The state-restore init container exits 1 (e.g. S3 unreachable)."""

    async def run_init(self, ctx: PodContext, container: dict[str, Any]) -> int:
        return 1 if container["name"] == "state-restore" else 0


async def test_failing_init_container_fails_the_wake(tmp_path: Path) -> None:
    settings = replace(POD_SETTINGS, state_sync=True, s3_bucket="bucket-1")
    async with (
        running_otm_k8s(tmp_path, pod_backend=FailingRestore(start_delay=0.05)) as k8s,
        open_runtime(k8s.kubeconfig_path, pod_settings=settings) as runtime,
    ):
        await runtime.start(launch("kim"))
        with pytest.raises(AgentFailed, match="state-restore: Init:CrashLoopBackOff"):
            await runtime.wait_ready("kim", WAKE_TIMEOUT_S)


async def test_crash_looping_pod_is_a_failed_instance(k8s: FakeK8s) -> None:
    """A running tenant's gateway exits: the kubelet restarts it (restartPolicy Always),
    and the runtime reports the instance failed, with the exit, instead of pending."""
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        await runtime.start(launch("lee"))
        await runtime.wait_ready("lee", WAKE_TIMEOUT_S)
        await k8s.server.crash_pod(NS, "lee", exit_code=1)

        async def restarted() -> bool:
            (pod,) = await api_pods(runtime, "otm/tenant=lee")
            return bool(pod["status"]["containerStatuses"][0]["restartCount"] >= 1)

        await eventually(restarted, timeout=WAKE_TIMEOUT_S)
        failed = [i for i in await runtime.list() if i.tenant_id == "lee"]
        assert failed == [] and await runtime.get("lee") is None
        with pytest.raises(AgentFailed, match="restarted 1x, last exit code 1"):
            await runtime.wait_ready("lee", WAKE_TIMEOUT_S)
