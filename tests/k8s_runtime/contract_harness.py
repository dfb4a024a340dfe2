"""The Kubernetes adapter in the Runtime contract suite (tests/runtime/).

The runtime talks to the fake API server; its kubelet runs every tenant pod as the real
stand-in agent process (process_backend.py), with the pod's S3 containers emulated against a
directory StateStore, so the contract's message-path checks run through the adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from daemon.adapters.state_dir import DirStateStore
from otm.devtools.fake_telegram import FakeTelegram
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.support.fake_cluster import runtime_on_pods
from tests.support.runtime_harness import RuntimeHarness


@asynccontextmanager
async def kubernetes_runtime(tmp: Path, telegram: FakeTelegram) -> AsyncIterator[RuntimeHarness]:
    store = DirStateStore(tmp / "state")
    backend = ProcessPodBackend(tmp / "pods", state_store=store)
    try:
        async with runtime_on_pods(tmp, backend, api_root=telegram.base_url) as runtime:
            yield RuntimeHarness(
                runtime,
                store,
                telegram,
                reachable=True,
                crash=backend.kill_tenant,
                set_agent_env=backend.agent_env.__setitem__,
            )
    finally:
        await store.close()
