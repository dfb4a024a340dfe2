"""Scale-out of the hot path: one daemon replica vs two on one Redis.

Setup (one run): a durable redis-server (AOF, ``appendfsync everysec``), the fake
Telegram Bot API, the fake Kubernetes API server whose kubelet runs the zero-work
agent (bench/zero_agent.py) as each tenant's pod (replicas share agents only on the
Kubernetes runtime), and ``python -m daemon`` replicas on it. Replica A is pinned to
CPU 0, replica B (when running) to CPU 1; the load generator (this process, which also
hosts the fake API server), Redis and the agents are not pinned: a 2-core machine
has no core to spare for them.

1. one replica: 100 senders in a closed loop, all to A, for ``--duration`` seconds;
   updates/s accepted (200) and delivered (agent receipt), CPU of every process.
2. B starts; once A's delivery leases are released (its workers idle out), the same
   100 senders, each tenant's senders split over A and B (a load balancer per
   connection), for the same time. Delivery of a tenant stays with whichever replica
   holds its lease; updates the other one takes reach the holder by a work signal.

The ratio two/one is the scale-out figure (target ≥ 1.8x with a core per replica).

Run: ``.venv/bin/python -m bench.scale_out`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from bench.common import (
    Figure,
    cpus,
    metered_run,
    print_report,
    ratio,
    scratch_dir,
    spawning_on,
    verdict,
)
from bench.hot_path import Ledger, Receipts, Sender, Tenant, closed_loop, wake_tenants
from bench.redis_server import BenchRedis
from daemon.adapters.state_dir import DirStateStore
from daemon.kube import names
from daemon.msgpath.buffer import lease_key
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.k8s_runtime.support import NS
from tests.support.daemon_rbac import daemon_rbac_options
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s.fixture import FakeK8s

ZERO_AGENT = [sys.executable, "-m", "bench.zero_agent"]
TARGET_SPEEDUP = 1.8
LEASE_RELEASE_TIMEOUT_S = 60.0


@asynccontextmanager
async def zero_agent_cluster(
    root: Path, data_dir: Path
) -> AsyncIterator[tuple[FakeK8s, ProcessPodBackend]]:
    """tests/support/fake_cluster.cluster_running_agents with the zero-work agent, and
    the pod backend (for the agents' pids)."""
    store = DirStateStore(data_dir / "state")
    backend = ProcessPodBackend(root / "pods", state_store=store, tenant_gateway=ZERO_AGENT)
    try:
        async with running_otm_k8s(
            root,
            namespaces=("default", NS, names.DAEMON_NAMESPACE),
            pod_backend=backend,
            **daemon_rbac_options(),
        ) as cluster:
            backend.store = cluster.server.store
            yield cluster, backend
    finally:
        await backend.close()
        await store.close()


def k8s_env(cluster: FakeK8s) -> dict[str, str]:
    return {
        "OTM_RUNTIME": "kubernetes",
        "OTM_KUBECONFIG": str(cluster.kubeconfig_path),
        "OTM_TENANT_NAMESPACE": NS,
        "OTM_DAEMON_NAMESPACE": names.DAEMON_NAMESPACE,
        "OTM_LOG_LEVEL": "WARNING",
    }


def agent_pids(backend: ProcessPodBackend) -> list[int]:
    return [running.proc.pid for running in backend._pods.values()]


async def start_replica(
    data_dir: Path, redis: BenchRedis, telegram: FakeTelegram, env: dict[str, str], cpu: int | None
) -> Daemon:
    daemon = Daemon(data_dir, redis.url, telegram, **env)
    with spawning_on({cpu} if cpu is not None else None):
        await daemon.start()
    return daemon


async def leases_released(redis: BenchRedis, tenants: list[Tenant]) -> None:
    """Until no tenant's delivery lease is held (A's workers idled out)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis.url)
    try:
        async with asyncio.timeout(LEASE_RELEASE_TIMEOUT_S):
            while await client.exists(*(lease_key(t.tenant_id) for t in tenants)):  # noqa: ASYNC110
                await asyncio.sleep(0.5)
    finally:
        await client.aclose()


async def measure(
    label: str,
    senders: list[Sender],
    receipts: Receipts,
    http: aiohttp.ClientSession,
    pids: dict[str, int],
    duration_s: float,
) -> tuple[float, float, dict[str, float]]:
    """(accepted/s, delivered/s, CPU share of one core per process) of a closed loop."""
    run = await metered_run(
        pids, closed_loop(senders, True, duration_s), lambda ids: receipts.wait_for(http, ids)
    )
    n, accepted, delivered = run.updates, run.accepted_per_s, run.delivered_per_s
    busy = run.meter.utilisation()
    agents = sum(v for k, v in busy.items() if k.startswith("agent"))
    shown = {k: v for k, v in busy.items() if not k.startswith("agent")} | {"agents": agents}
    text = ", ".join(f"{k} {100 * v:.0f}%" for k, v in shown.items())
    print(f"{label}: {n} updates, accepted {accepted:,.0f}/s, delivered {delivered:,.0f}/s")
    print(f"  CPU (% of one core): {text}")
    per_daemon = {k: run.meter.used[k] for k in pids if k.startswith("daemon")}
    print(f"  updates per daemon CPU-second: {n / sum(per_daemon.values()):,.0f}")
    return accepted, delivered, shown


async def scenario(root: Path, tenants_n: int, duration_s: float) -> list[Figure]:
    all_cpus = cpus()
    pinned = len(all_cpus) >= 2 and not os.environ.get("OTM_BENCH_NO_PIN")
    data_dir = root / "data"
    data_dir.mkdir()
    redis = BenchRedis(root / "redis", fsync="everysec")
    redis.start()
    replicas: list[Daemon] = []
    senders: list[Sender] = []
    try:
        async with (
            FakeTelegram(host="127.0.0.1", port=0) as telegram,
            zero_agent_cluster(root, data_dir) as (cluster, backend),
            aiohttp.ClientSession() as http,
        ):
            env = k8s_env(cluster)
            first = await start_replica(
                data_dir, redis, telegram, env, all_cpus[0] if pinned else None
            )
            replicas.append(first)
            tenants = await wake_tenants(first, tenants_n, "so", 8000)
            ledger = Ledger()
            receipts = Receipts(tenants, ledger)
            pids = {"daemon A": first.proc.pid if first.proc else 0, "redis": redis.pid}
            pids["loadgen"] = os.getpid()
            pids.update({f"agent{n}": pid for n, pid in enumerate(agent_pids(backend))})
            solo = [
                Sender(tenants[n % tenants_n], first.router_url, ledger, 100 + n)
                for n in range(100)
            ]
            senders += solo
            await measure("warm-up, one replica", solo, receipts, http, pids, 1.0)
            one = await measure("one replica", solo, receipts, http, pids, duration_s)

            second = await start_replica(
                data_dir, redis, telegram, env, all_cpus[1] if pinned else None
            )
            replicas.append(second)
            pids["daemon B"] = second.proc.pid if second.proc else 0
            await leases_released(redis, tenants)
            # Sender n serves tenant n % tenants_n; alternate blocks go to B, so every
            # tenant's traffic lands on both replicas.
            pair = [
                Sender(
                    tenants[n % tenants_n],
                    (first if (n // tenants_n) % 2 == 0 else second).router_url,
                    ledger,
                    300 + n,
                )
                for n in range(100)
            ]
            senders += pair
            await measure("warm-up, two replicas", pair, receipts, http, pids, 1.0)
            two = await measure("two replicas", pair, receipts, http, pids, duration_s)
    finally:
        for sender in senders:
            await sender.close()
        for replica in reversed(replicas):
            await replica.stop()
        redis.stop()
    placement = "one core per replica" if pinned else "nothing pinned"
    return [
        Figure(
            f"{what} updates/s, two replicas ({tenants_n} tenants, {placement})",
            f">= {TARGET_SPEEDUP}x one",
            f"{two_rate:,.0f}/s",
            f"one replica {one_rate:,.0f}/s",
            ratio(two_rate, one_rate),
            verdict(two_rate >= TARGET_SPEEDUP * one_rate),
        )
        for what, two_rate, one_rate in (
            ("accepted", two[0], one[0]),
            ("delivered", two[1], one[1]),
        )
    ]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke run)")
    parser.add_argument("--tenants", type=int, default=10, help="tenants (one agent pod each)")
    args = parser.parse_args(argv)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)  # children inherit it (see hot_path.py)
    print("Redis: AOF with appendfsync everysec")
    with scratch_dir("otm-bench-scale-out-") as root:
        async with asyncio.timeout(300):
            figures = await scenario(root, args.tenants, 2.0 if args.quick else 6.0)
    print_report("scale-out (zero-work agent, Kubernetes runtime on the fake API server)", figures)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
