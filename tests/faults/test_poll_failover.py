"""Long polling across two replicas (one Redis, one registry, one fake Kubernetes cluster
running the agents): the replica holding a tenant's poll lease is SIGKILLed mid-stream and
the other takes over. Every update reaches the agent exactly once.

The agents' Bot API is the replicas' relay, reached as on a cluster through one Service
address (tests/support/service_proxy.py). It prefers the replica that survives: a reply in
flight through a killed replica is cut (as a model call through it would be), which is not
what these tests are about."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from daemon.crash_points import CRASH_ENV
from daemon.embedded_redis import free_port
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import Daemon
from tests.e2e.test_message_flow import echoes
from tests.faults.test_replicas import synced_update_log
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.fake_cluster import kubernetes_daemon_env
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.service_proxy import ServiceProxy

TOKEN = "5701:failover"
CHAT = 12
REPLY_TIMEOUT = 60.0


@dataclass
class AgentService:
    url: str
    """What agents are rendered with (the Service), ending in ``/v1``."""
    first_port: int
    second_port: int


@pytest.fixture
async def agent_service() -> AsyncIterator[AgentService]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    async with ServiceProxy([second, first]) as service:
        yield AgentService(f"http://127.0.0.1:{service.port}/v1", first, second)


def replica_env(cluster: FakeK8s, service: AgentService, port: int, **extra: str) -> dict[str, str]:
    return {
        "OTM_MODEL_GATEWAY_PORT": str(port),
        "OTM_MODEL_GATEWAY_URL": service.url,
        **kubernetes_daemon_env(cluster),
        "OTM_INGRESS": "polling",
        "OTM_POLL_TIMEOUT_S": "1",
        **extra,
    }


async def finish(telegram: FakeTelegram, replicas: list[Daemon], count: int) -> list[int]:
    """Wait for ``count`` echoes, sleep the tenant (its pod's final sync), stop the replicas;
    the update ids the agent persisted."""
    await telegram.wait_for_messages(TOKEN, count, REPLY_TIMEOUT, chat_id=CHAT)
    survivor = next(r for r in replicas if r.proc is not None)
    status, body = await survivor.api("POST", "/v1/tenants/fo/sleep")
    assert status == 200, body
    for replica in replicas:
        if replica.proc is not None:
            replica.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                await replica.proc.wait()
        await replica.stop()
    return synced_update_log(replicas[0].data_dir, "fo")


async def test_poller_killed_between_buffering_and_committing(
    start_daemon: DaemonFactory,
    telegram: FakeTelegram,
    cluster: FakeK8s,
    agent_service: AgentService,
) -> None:
    """The holder dies right after appending a batch, before its offset is stored: the next
    holder fetches the same batch again, and the buffer drops what it already has."""
    first = await start_daemon(
        **replica_env(
            cluster, agent_service, agent_service.first_port, **{CRASH_ENV: "poll-buffered"}
        )
    )
    status, body = await first.api(
        "POST", "/v1/tenants", json={"tenant_id": "fo", "bot_token": TOKEN}
    )
    assert status == 201, body
    await telegram.wait_for_calls(TOKEN, "getUpdates")  # the first replica holds the lease
    second = await start_daemon(**replica_env(cluster, agent_service, agent_service.second_port))
    for n in range(1, 6):
        telegram.inject_update(TOKEN, make_text_update(n, CHAT, f"m{n}"))
    async with asyncio.timeout(30):
        assert first.proc is not None
        assert await first.proc.wait() == -signal.SIGKILL
    await first.kill()
    for n in range(6, 11):
        telegram.inject_update(TOKEN, make_text_update(n, CHAT, f"m{n}"))
    persisted = await finish(telegram, [first, second], 10)
    assert persisted == list(range(1, 11))
    texts = echoes([m.text for m in telegram.sent(TOKEN, CHAT)])
    assert texts == [f"echo: m{n} (#{n})" for n in range(1, 11)]


async def test_poller_killed_mid_stream(
    start_daemon: DaemonFactory,
    telegram: FakeTelegram,
    cluster: FakeK8s,
    agent_service: AgentService,
) -> None:
    """Updates keep coming while the lease holder is SIGKILLed at an arbitrary moment."""
    first = await start_daemon(**replica_env(cluster, agent_service, agent_service.first_port))
    status, body = await first.api(
        "POST", "/v1/tenants", json={"tenant_id": "fo", "bot_token": TOKEN}
    )
    assert status == 201, body
    await telegram.wait_for_calls(TOKEN, "getUpdates")
    second = await start_daemon(**replica_env(cluster, agent_service, agent_service.second_port))
    total = 24
    for n in range(1, total + 1):
        telegram.inject_update(TOKEN, make_text_update(n, CHAT, f"m{n}"))
        if n == 8:
            await first.kill()
        await asyncio.sleep(0.05)
    persisted = await finish(telegram, [first, second], total)
    assert persisted == list(range(1, total + 1))
    texts = echoes([m.text for m in telegram.sent(TOKEN, CHAT)])
    assert texts == [f"echo: m{n} (#{n})" for n in range(1, total + 1)]
