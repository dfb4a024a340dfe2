"""Pod failure → registry latency (target: < 1 s p99).

Real parts: the fake Kubernetes API server over HTTP with its simulated kubelet,
the Kubernetes runtime's informer, the reconciler, a SQLite registry and a
private redis-server. N tenants run; their pods fail one by one; the latency is
from the kubelet marking the pod Failed to the reconciler's ``instance_lost``
event (published right after the conditional registry write), received over
Redis pub/sub.

    PYTHONPATH=. .venv/bin/python bench/pod_failure.py [--tenants 100]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from daemon.adapters.registry_sqlite import SqliteRegistry  # noqa: E402
from daemon.coordination import Coordination  # noqa: E402
from daemon.metrics import Metrics  # noqa: E402
from daemon.reconciler import Reconciler  # noqa: E402
from tests.k8s_runtime.support import NS, open_runtime  # noqa: E402
from tests.support.fake_cluster import running_otm_k8s  # noqa: E402
from tests.support.records import running_record  # noqa: E402
from tests.support.records import sample_launch as launch  # noqa: E402
from tests.support.servers import running_redis  # noqa: E402

TARGET_P99_S = 1.0


async def run(tenants: int, tmp: Path) -> list[float]:
    with running_redis(tmp / "redis") as redis_server:
        client = aioredis.Redis.from_url(redis_server.url)
        registry = SqliteRegistry(tmp / "registry.sqlite3")
        coordination = Coordination(client)
        try:
            async with (
                running_otm_k8s(tmp, namespaces=("default", NS)) as k8s,
                open_runtime(k8s.kubeconfig_path) as runtime,
            ):
                ids = [f"bench-{i}" for i in range(tenants)]
                for tid in ids:
                    await runtime.start(launch(tid))
                for tid in ids:
                    instance = await runtime.wait_ready(tid, timeout=30)
                    await registry.create(running_record(tid, instance))
                reconciler = Reconciler(
                    registry=registry, runtime=runtime, coordination=coordination, metrics=Metrics()
                )
                loop_task = asyncio.create_task(reconciler.run_events())
                events = coordination.subscribe_events()
                await asyncio.sleep(0.2)  # watch and subscription open
                latencies: list[float] = []
                try:
                    for tid in ids:
                        pod = (await runtime.get(tid)).name  # type: ignore[union-attr]
                        started = time.perf_counter()
                        await k8s.server.fail_pod(NS, pod)
                        async with asyncio.timeout(10):
                            async for event in events:
                                if event["tenant_id"] == tid and event["kind"] == "instance_lost":
                                    break
                        latencies.append(time.perf_counter() - started)
                finally:
                    await events.aclose()
                    loop_task.cancel()
                    await asyncio.wait([loop_task], timeout=5)
                return latencies
        finally:
            await registry.close()
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # each lost agent logs a warning
    with tempfile.TemporaryDirectory() as tmp:
        latencies = asyncio.run(run(args.tenants, Path(tmp)))
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"pod_failure_to_registry n={len(latencies)} p50={p50 * 1000:.1f}ms "
        f"p99={p99 * 1000:.1f}ms target_p99={TARGET_P99_S * 1000:.0f}ms "
        f"ratio_p99_to_target={p99 / TARGET_P99_S:.3f}"
    )


if __name__ == "__main__":
    main()
