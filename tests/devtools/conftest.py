"""Real loopback servers and agent processes for the devtools tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

from otm.devtools.fake_telegram import FakeTelegram
from otm.devtools.stub_llm import StubLLM
from tests.support.agent_stub import (
    AgentStubProcess,
    StubTenant,
    make_stub_tenant,
    stub_model_tenant,
)

SpawnAgent = Callable[..., Awaitable[AgentStubProcess]]


@pytest.fixture
def fake_tg(telegram: FakeTelegram) -> FakeTelegram:
    """The shared fake Bot API fixture (tests/support/daemon_fixtures.py), by this tier's name."""
    return telegram


@pytest.fixture
async def stub_llm() -> AsyncIterator[StubLLM]:
    async with StubLLM(host="127.0.0.1", port=0) as llm:
        yield llm


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def tenant(tmp_path: Path, fake_tg: FakeTelegram) -> StubTenant:
    return make_stub_tenant(tmp_path, fake_tg.base_url)


@pytest.fixture
def model_tenant(tmp_path: Path, fake_tg: FakeTelegram, stub_llm: StubLLM) -> StubTenant:
    """A tenant whose agent talks to the stub LLM (real turns, real history)."""
    return stub_model_tenant(tmp_path, fake_tg, stub_llm)


class ModelRig(NamedTuple):
    """A model-backed tenant and what a test drives its agent with."""

    tenant: StubTenant
    telegram: FakeTelegram
    llm: StubLLM
    spawn: SpawnAgent
    http: aiohttp.ClientSession


@pytest.fixture
def rig(
    model_tenant: StubTenant,
    fake_tg: FakeTelegram,
    stub_llm: StubLLM,
    spawn_agent: SpawnAgent,
    http: aiohttp.ClientSession,
) -> ModelRig:
    return ModelRig(model_tenant, fake_tg, stub_llm, spawn_agent, http)


@pytest.fixture
async def spawn_agent(
    http: aiohttp.ClientSession,
) -> AsyncIterator[SpawnAgent]:
    """Start agent stub processes; every one is stopped (then killed) at teardown."""
    started: list[AgentStubProcess] = []

    async def spawn(tenant: StubTenant, *, wait_ready: bool = True, **env: Any) -> AgentStubProcess:
        agent = AgentStubProcess(tenant, **{k: str(v) for k, v in env.items()})
        started.append(agent)
        await agent.start()
        if wait_ready:
            await agent.wait_ready(http)
        return agent

    yield spawn
    for agent in started:
        await agent.stop(timeout_s=5.0)
