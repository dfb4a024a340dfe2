"""Runtime adapters under the same contract suite.

Each adapter contributes one factory to ``RUNTIME_FACTORIES``; the contract
tests in test_runtime_contract.py run once per adapter. A factory yields a
RuntimeHarness: the runtime plus what the suite needs around it (a launch
spec, the fake Bot API its agents talk to, and adapter-specific capabilities
such as "the test can reach the agent's webhook" or "crash an agent").

To add the Kubernetes adapter: write ``kubernetes_runtime`` (fake API server
from tests/support/fake_k8s, reachable=False unless its fake pods serve HTTP)
and add it to RUNTIME_FACTORIES.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid
from otm.devtools.fake_telegram import FakeTelegram
from tests.k8s_runtime.contract_harness import kubernetes_runtime
from tests.support.local_runtime import local_runtime_settings, new_local_runtime
from tests.support.runtime_harness import RuntimeHarness

HarnessFactory = Callable[[Path, FakeTelegram], AbstractAsyncContextManager[RuntimeHarness]]


@asynccontextmanager
async def local_runtime(tmp: Path, telegram: FakeTelegram) -> AsyncIterator[RuntimeHarness]:
    settings = local_runtime_settings(tmp, telegram.base_url, env={})
    session = aiohttp.ClientSession()
    runtime, store = new_local_runtime(settings, session)

    async def crash(tenant_id: str) -> None:
        for pid_file in (settings.agents_dir / tenant_id).glob(f"*/{PID_FILE}"):
            pid = recorded_agent_pid(pid_file)
            if pid is not None:
                os.killpg(pid, signal.SIGKILL)

    # LocalRuntime passes the daemon's OTM_AGENT_* variables on to its agents.
    saved_env = dict(os.environ)
    try:
        yield RuntimeHarness(
            runtime,
            store,
            telegram,
            reachable=True,
            crash=crash,
            set_agent_env=os.environ.__setitem__,
        )
    finally:
        await runtime.close()
        await session.close()
        os.environ.clear()
        os.environ.update(saved_env)


RUNTIME_FACTORIES: dict[str, HarnessFactory] = {"local": local_runtime}


RUNTIME_FACTORIES["kubernetes"] = kubernetes_runtime


@pytest.fixture(params=sorted(RUNTIME_FACTORIES))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RuntimeHarness]:
    async with (
        FakeTelegram(host="127.0.0.1", port=0) as telegram,
        RUNTIME_FACTORIES[request.param](tmp_path, telegram) as built,
    ):
        yield built
