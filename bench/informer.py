"""The daemon's pod informer at 1,000 and 10,000 pods: initial list, re-list, memory per pod.

The fake Kubernetes API server runs in a child process (``--serve``), as an apiserver
would: its CPU is not this process's. Its tenant pods are written Running with the
status the fake kubelet gives them (no kubelet runs: nothing to probe). This process
runs, against it:

* the daemon's PodInformer (daemon/kube/informer.py): initial list (``start()``: pages of
  ``LIST_PAGE_SIZE``, each pod cut down to its view) and a re-list (what a 410 Gone
  triggers: the same list, diffed against the cache);
* as the baseline in the same run, the list the informer did before: one request for
  every pod, every pod kept whole (``whole_list``);
* memory per tracked pod: what the cache holds after the list, per pod (tracemalloc, in
  a pass of its own since tracing slows allocation), for views and for whole pods; and
  the peak while listing.

``--pod-failure``: also pod failure → registry with 100,000 tenants registered and 10,000
running on SQLite (``--registry dynamodb``: on moto), bench/scale.py's measurement (a
daemon process, the fake API server and kubelet in this process) at that size.

Run: ``.venv/bin/python -m bench.informer`` (``--quick``: 1,000 pods only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from bench.common import Figure, ms, print_report, ratio, scratch_dir
from bench.common import verdict as verdict_of
from daemon.kube import manifests as m
from daemon.kube.client import JSON, call_json, open_api_client
from daemon.kube.informer import PodInformer
from tests.support.processes import end_process

NS = "otm-tenants"
POD_SETTINGS = m.PodSettings(namespace=NS, image="openclaw:bench", state_sync=False)
LIST_TARGET_S = 2.0
KB = 1024
CONDITIONS = (
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
)
MB = 1024 * 1024


# -- the API server (child process) --------------------------------------------------------------
def running_status(pod: JSON, n: int) -> None:
    """What the fake kubelet writes for a Running, Ready pod (bound to its node)."""
    t = "2026-12-04T22:00:00Z"
    ip = f"127.{10 + n // 65536}.{n // 256 % 256}.{n % 256}"

    def cond(kind: str) -> JSON:
        return {"type": kind, "lastTransitionTime": t, "status": "True", "lastProbeTime": None}

    pod["spec"]["nodeName"] = "fake-node"
    pod["status"] = {
        "phase": "Running",
        "qosClass": "Burstable",
        "conditions": [cond(k) for k in CONDITIONS],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": t,
        "containerStatuses": [
            {
                "name": "gateway",
                "image": POD_SETTINGS.image,
                "imageID": "",
                "containerID": f"fake://{pod['metadata']['uid'][:8]}-gateway-0",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": t}},
                "lastState": {},
            }
        ],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
    }


async def serve() -> None:
    """Serve until stdin closes; ``seed N`` lines grow the pods to N (answer: ``ok N``)."""
    from tests.support.fake_cluster import running_otm_k8s
    from tests.support.fake_k8s import PODS

    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="otm-bench-informer-") as root:
        async with running_otm_k8s(
            Path(root), namespaces=("default", NS), kubelet=False, history_limit=100_000
        ) as cluster:
            store = cluster.server.store
            print(json.dumps({"kubeconfig": str(cluster.kubeconfig_path)}), flush=True)
            count = 0
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                target = int(line.split()[1])
                for n in range(count, target):
                    created = store.create(
                        PODS, NS, m.tenant_pod(f"t{n:05d}", settings=POD_SETTINGS)
                    )
                    store.mutate(
                        PODS, NS, created["metadata"]["name"], lambda p, n=n: running_status(p, n)
                    )
                count = max(count, target)
                print(f"ok {count}", flush=True)


@dataclass
class ApiServer:
    proc: asyncio.subprocess.Process
    kubeconfig: str

    async def seed(self, count: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"seed {count}\n".encode())
        await self.proc.stdin.drain()
        answer = (await self.proc.stdout.readline()).decode()
        if answer.strip() != f"ok {count}":
            raise RuntimeError(f"API server: {answer!r}")


@contextlib.asynccontextmanager
async def api_server() -> AsyncIterator[ApiServer]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.informer",
        "--serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        yield ApiServer(proc, json.loads(first)["kubeconfig"])
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # its cue to stop
        await end_process(proc, grace_s=20, sig=None)


# -- the lists measured --------------------------------------------------------------------------
async def whole_list(api: Any) -> dict[str, JSON]:
    """The informer's list before: one request, every pod parsed and kept whole."""
    body = await call_json(
        client.CoreV1Api(api).list_namespaced_pod, NS, label_selector=m.OPENCLAW_SELECTOR
    )
    return {item["metadata"]["name"]: item for item in body.get("items", [])}


async def timed(run: Callable[[], Awaitable[Any]]) -> float:
    gc.collect()
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started


async def held_bytes(build: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """(bytes what ``build`` returns keeps allocated, peak bytes allocated while building)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        kept = await build()
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
        del kept
        return after - before, peak - before
    finally:
        tracemalloc.stop()


@dataclass
class Measured:
    pods: int
    initial_s: float = 0.0
    relist_s: float = 0.0
    whole_s: float = 0.0
    view_bytes: int = 0
    view_peak: int = 0
    whole_bytes: int = 0
    whole_peak: int = 0


async def measure(kubeconfig: str, pods: int) -> Measured:
    result = Measured(pods)
    api = await open_api_client(kubeconfig)
    try:
        result.whole_s = await timed(lambda: whole_list(api))
        informer = PodInformer(api, NS)
        try:
            result.initial_s = await timed(informer.start)
            result.relist_s = await timed(informer._list)
            if len(informer.cache) != pods:
                raise RuntimeError(f"informer holds {len(informer.cache)} pods, not {pods}")
        finally:
            await informer.stop()

        async def views() -> dict[str, JSON]:
            pods_by_name, _ = await PodInformer(api, NS).lister.list_views()
            return pods_by_name

        result.view_bytes, result.view_peak = await held_bytes(views)
        result.whole_bytes, result.whole_peak = await held_bytes(lambda: whole_list(api))
    finally:
        await api.close()
    return result


def figures(results: list[Measured]) -> list[Figure]:
    rows: list[Figure] = []
    for r in results:
        target = f"< {LIST_TARGET_S:.0f} s" if r.pods >= 10_000 else "-"
        for what, seconds in (("initial list", r.initial_s), ("re-list (after a 410)", r.relist_s)):
            rows.append(
                Figure(
                    f"informer {what}, {r.pods:,} pods",
                    target,
                    ms(seconds),
                    f"before (one list, whole pods) {ms(r.whole_s)}",
                    ratio(seconds, r.whole_s),
                    verdict_of(seconds < LIST_TARGET_S) if r.pods >= 10_000 else "info",
                )
            )
        rows.append(
            Figure(
                f"informer memory per tracked pod, {r.pods:,} pods (tracemalloc)",
                "-",
                f"{r.view_bytes / r.pods / KB:.2f} KB",
                f"whole pods {r.whole_bytes / r.pods / KB:.2f} KB",
                ratio(r.view_bytes, r.whole_bytes),
                "info",
            )
        )
        rows.append(
            Figure(
                f"informer peak allocation while listing {r.pods:,} pods",
                "-",
                f"{r.view_peak / MB:.1f} MB",
                f"whole pods {r.whole_peak / MB:.1f} MB",
                ratio(r.view_peak, r.whole_peak),
                "info",
            )
        )
    return rows


async def pod_failure(kind: str) -> None:
    from bench import scale
    from otm.devtools.fake_telegram import FakeTelegram

    sizes = scale.Sizes(registered=100_000, running=10_000)
    with scratch_dir("otm-bench-informer-") as root:
        async with FakeTelegram(host="127.0.0.1", port=0) as telegram:
            print(f"{kind}: seeding {sizes.registered:,} tenants, {sizes.running:,} pods")
            if kind == "dynamodb":
                with scale.moto_process() as moto_url:
                    result = await scale.run_registry(kind, root, telegram, sizes, moto_url)
            else:
                result = await scale.run_registry(kind, root, telegram, sizes, None)
    print_report(
        f"pod failure → registry, {sizes.registered:,} registered / {sizes.running:,} running",
        scale.figures(result, sizes),
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.informer", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 pods only")
    parser.add_argument("--pod-failure", action="store_true", help="100,000 / 10,000 failures")
    parser.add_argument("--registry", choices=("sqlite", "dynamodb"), default="sqlite")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        await serve()
        return 0
    if args.pod_failure:
        await pod_failure(args.registry)
        return 0
    sizes = [1_000] if args.quick else [1_000, 10_000]
    results: list[Measured] = []
    async with api_server() as server:
        for size in sizes:
            started = time.monotonic()
            await server.seed(size)
            print(f"  {size:,} pods in the API server ({time.monotonic() - started:.1f}s)")
            results.append(await measure(server.kubeconfig, size))
    print_report("pod informer (fake Kubernetes API server in its own process)", figures(results))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
    os._exit(1)
