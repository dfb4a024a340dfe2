"""The loops inside real daemons (``python -m daemon``) with real local agents:
an agent killed behind the daemon's back, an idle tenant culled, and two
replicas (Kubernetes runtime) on one Redis and one SQLite file failing over
leadership, and a second local-runtime daemon on a data dir refused."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid
from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.coordination import Coordination
from tests.e2e.harness import Daemon
from tests.k8s_runtime.support import NS
from tests.support.fake_cluster import cluster_running_agents, kubernetes_daemon_env
from tests.support.fake_k8s import PODS
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.polling import eventually
from tests.support.servers import REPO_ROOT, python_cmd

LEASE_S = 3.0
StartDaemon = Callable[..., Awaitable[Daemon]]


def live_agents(data_dir: Path, tenant_id: str) -> list[int]:
    pids = (recorded_agent_pid(p) for p in (data_dir / "agents").glob(f"{tenant_id}/*/{PID_FILE}"))
    return [pid for pid in pids if pid is not None]


async def status(daemon: Daemon, tenant_id: str) -> str:
    return str((await daemon.tenant(tenant_id))["status"])


async def event_kinds(daemon: Daemon, tenant_id: str) -> list[str]:
    code, body = await daemon.api("GET", f"/v1/tenants/{tenant_id}/events")
    assert code == 200, body
    return [e["kind"] for e in body["items"]]


async def has_event(daemon: Daemon, tenant_id: str, kind: str) -> bool:
    return kind in await event_kinds(daemon, tenant_id)


async def is_leader(daemon: Daemon) -> bool:
    code, body = await daemon.api("GET", "/v1/status")
    assert code == 200, body
    return bool(body["daemon"]["leader"])


async def wake(daemon: Daemon, tenant_id: str) -> dict[str, Any]:
    code, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/wake?wait=true")
    assert code == 200, body
    return dict(body)


@pytest.fixture
async def shared_state(
    data_dir: Path, redis_url: str
) -> AsyncIterator[tuple[SqliteRegistry, Coordination]]:
    """The test's own handle on the daemons' registry file and Redis, to set
    what the admin API deliberately refuses (an idle timeout of 1 s)."""
    registry = SqliteRegistry(data_dir / "registry.sqlite3")
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield registry, Coordination(client)
    finally:
        await client.aclose()
        await registry.close()


async def set_idle_timeout(
    shared: tuple[SqliteRegistry, Coordination], tenant_id: str, seconds: int
) -> None:
    registry, coordination = shared
    await registry.update(tenant_id, idle_timeout_s=seconds)
    # Any tenant event makes the leader's culler re-read that tenant.
    await coordination.publish_event(tenant_id, "updated", fields=["idle_timeout_s"])


async def test_killed_agent_and_idle_tenant(
    start_daemon: StartDaemon,
    data_dir: Path,
    shared_state: tuple[SqliteRegistry, Coordination],
) -> None:
    daemon = await start_daemon()
    await eventually(lambda: is_leader(daemon), timeout=10, what="single daemon leads")
    for tid in ("crashy", "sleepy"):
        await daemon.create_tenant(tid, f"{len(tid)}:{tid}")
        await wake(daemon, tid)

    # An agent dies behind the daemon's back: the registry follows at once.
    [pid] = live_agents(data_dir, "crashy")
    os.killpg(pid, signal.SIGKILL)
    # The event comes last, after the registry write and the cache drop.
    await eventually(lambda: has_event(daemon, "crashy", "instance_lost"), timeout=10, what="lost")
    tenant = await daemon.tenant("crashy")
    assert tenant["status"] == "idle"
    assert tenant["endpoint"] is None and tenant["pod_name"] is None
    assert "agent lost" in tenant["status_reason"]

    # The leader's culler sleeps an idle tenant once its (per-tenant) timeout passes.
    assert await status(daemon, "sleepy") == "running"
    await set_idle_timeout(shared_state, "sleepy", 1)
    await eventually(lambda: _status_is(daemon, "sleepy", "idle"), timeout=20, what="culled")
    assert live_agents(data_dir, "sleepy") == []
    await eventually(lambda: has_event(daemon, "sleepy", "culled"), timeout=5, what="event")


async def _status_is(daemon: Daemon, tenant_id: str, expected: str) -> bool:
    return await status(daemon, tenant_id) == expected


@pytest.fixture
async def cluster(tmp_path: Path, data_dir: Path) -> AsyncIterator[FakeK8s]:
    """Replicas share agents only on the Kubernetes runtime (a local-runtime daemon
    owns its data dir alone): the fake apiserver, its kubelet running stand-in agents."""
    async with cluster_running_agents(tmp_path, data_dir) as k8s:
        yield k8s


def tenant_pods(cluster: FakeK8s, tenant_id: str) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in cluster.server.store.snapshot(PODS, NS)
        if p["metadata"].get("labels", {}).get("otm/tenant") == tenant_id
    ]


async def two_replicas(start_daemon: StartDaemon, cluster: FakeK8s) -> tuple[Daemon, Daemon]:
    """Two Kubernetes-runtime daemons on one data dir (registry) and one Redis;
    (leader, follower) once elected."""
    env = {
        "OTM_LEADER_LEASE_S": str(LEASE_S),
        **kubernetes_daemon_env(cluster),
    }
    replicas = [await start_daemon(**env), await start_daemon(**env)]

    async def leaders() -> list[Daemon]:
        flags = await asyncio.gather(*(is_leader(d) for d in replicas))
        return [d for d, flag in zip(replicas, flags, strict=True) if flag]

    async def one_leader() -> bool:
        return len(await leaders()) == 1

    await eventually(one_leader, timeout=LEASE_S * 5, what="one leader")
    [leader] = await leaders()
    [follower] = [d for d in replicas if d is not leader]
    return leader, follower


async def test_leader_failover_between_two_daemons(
    start_daemon: StartDaemon,
    cluster: FakeK8s,
    shared_state: tuple[SqliteRegistry, Coordination],
) -> None:
    leader, follower = await two_replicas(start_daemon, cluster)
    # Leader-only work runs on the leader only: the follower's culler is idle.
    await leader.create_tenant("before", "1:before")
    await wake(leader, "before")
    await set_idle_timeout(shared_state, "before", 1)
    await eventually(lambda: has_event(leader, "before", "culled"), timeout=20, what="culled")
    assert await status(leader, "before") == "idle"
    # Culled once, by the leader alone.
    assert [e for e in await event_kinds(leader, "before") if e == "culled"] == ["culled"]

    # SIGKILL the leader: no release, so the follower waits the lease out, then leads.
    await leader.kill()
    await eventually(lambda: is_leader(follower), timeout=LEASE_S * 5, what="takeover")
    code, metrics = await follower.api("GET", "/metrics")
    assert code == 200 and "otm_is_leader 1.0" in metrics

    # Leader-only work now runs on the survivor: its culler sleeps an idle tenant.
    await follower.create_tenant("after", "2:after")
    await wake(follower, "after")
    await set_idle_timeout(shared_state, "after", 1)
    await eventually(lambda: _status_is(follower, "after", "idle"), timeout=20, what="culled")
    assert tenant_pods(cluster, "after") == []


async def test_a_second_local_daemon_on_the_data_dir_is_refused(
    start_daemon: StartDaemon, data_dir: Path
) -> None:
    """Two local-runtime daemons on one data dir would each start an agent for a
    tenant (a LocalRuntime sees only its own agents): the second one refuses to start,
    with a one-line reason and a non-zero exit, and the first one keeps serving."""
    first = await start_daemon()
    assert first.proc is not None
    await first.create_tenant("shared", "1:shared")
    second = Daemon(data_dir, first.redis_url, first.telegram)
    proc = await asyncio.create_subprocess_exec(
        *python_cmd("-m", "daemon"),
        cwd=REPO_ROOT,
        env=second.env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, stderr = await proc.communicate()
    assert proc.returncode == 1
    [line] = stderr.decode().strip().splitlines()
    assert (
        f"another otm daemon (pid {first.proc.pid}) already runs on data directory {data_dir}"
        in line
    ), line
    woken = await wake(first, "shared")
    assert woken["status"] == "running"
    assert len(live_agents(data_dir, "shared")) == 1
