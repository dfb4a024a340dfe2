"""Scale: 100,000 tenants registered, 10,000 running, one daemon process (issue 13:
< 500 MB RSS, start-up to serving < 10 s).

Per registry (SQLite; DynamoDB on a moto server process, 10,000 / 1,000 by default since
moto walks its whole table for every page), against the fake Kubernetes API server
(tests/support/fake_k8s) whose kubelet has no pod backend: pods get loopback IPs and
turn Ready, no process runs behind them (and they carry no probes: nothing answers).

* baseline: the same daemon with 0 tenants and 0 pods, its RSS and start-up measured
  in the same run (the ratio is "what the tenants cost");
* RSS (VmRSS from /proc) over 15 s after start-up, and its peak (VmHWM) after the
  failure storm;
* daemon start-up (spawn → ready line), and the part of it the informer's first list
  took (the daemon's log line);
* the pod informer (the daemon's own PodInformer class) against the same API server:
  initial list and a re-list as a 410 Gone triggers it, in this process, N pods vs 0;
  the memory its cache holds, in a process of its own (bench/scale_informer_rss.py);
* pod failure → registry: the fake kubelet fails a pod (``fail_pod``); the time until
  the daemon's reconciler has written the tenant's new status (it publishes the
  ``instance_lost`` event right after the conditional write; this process subscribes
  to it on Redis). 150 failures one at a time, then a burst of 50 at once;
* capacity: memory per running tenant (the informer's cache per pod) and per registered
  tenant (the rest above idle), tenants per daemon under 500 MB, start-up per 10,000.

Seeding is bulk: the registry from this process in one SQLite transaction (DynamoDB:
BatchWriteItem), the first pod and its Secret through the API, the rest straight into
the fake API server's store (its same create path, minus HTTP).

Run: ``.venv/bin/python -m bench.scale`` (``--quick``: 2,000 / 200 / 40 failures;
``--registry sqlite|dynamodb|both``; ``--tenants N --running N`` for other sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from kubernetes_asyncio import client

from bench.common import (
    Figure,
    ms,
    peak_rss_bytes,
    percentile,
    print_report,
    ratio,
    rss_bytes,
    scratch_dir,
)
from bench.common import verdict as verdict_of
from bench.redis_server import BenchRedis
from daemon.embedded_redis import free_port
from daemon.kube import manifests as m
from daemon.kube import names
from daemon.kube.client import call_json, open_api_client
from daemon.kube.informer import PodInformer
from daemon.model import Tenant, TenantStatus
from daemon.ports import AgentLaunch, Registry
from daemon.redis_keys import EVENTS_CHANNEL
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.support.fake_cluster import running_otm_k8s
from tests.support.fake_k8s import PODS, SECRETS
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.servers import FAKE_AWS_ENV, REPO_ROOT, project_env, python_cmd

NS = "otm-tenants"
POD_SETTINGS = m.PodSettings(namespace=NS, image="openclaw:bench", state_sync=False)
RSS_TARGET = 500 * 1024 * 1024
"""Issue 13's bar for one daemon at 100,000 registered / 10,000 running."""
START_TARGET_S = 10.0
SETTLE_S = 15.0
"""RSS is read over this long after ready: the start-up sweeps (pollers, reconciler
resync, culler, tenant gauge) have each been over every tenant once by then."""
LATENCY_TARGET_S = 1.0
MB = 1024 * 1024


@dataclass
class Sizes:
    registered: int = 100_000
    running: int = 10_000
    sequential_failures: int = 150
    burst_failures: int = 50


@dataclass
class Result:
    kind: str
    idle_rss: int = 0
    rss: int = 0
    peak_rss: int = 0
    idle_start_s: float = 0.0
    start_s: float = 0.0
    informer_start_s: float = float("nan")
    """Of the start-up: the informer's first list (the daemon's own log line)."""
    failures: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    internal_mean_s: float = float("nan")
    lost: int = 0
    registry_rtt: list[float] = field(default_factory=list)
    """One conditional read-then-write of a record from this process (same load)."""


# -- registries ------------------------------------------------------------------------------
@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """moto's server in its own process: its CPU is not the daemon's nor this loop's."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **FAKE_AWS_ENV},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        import urllib.request

        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def registry_env(kind: str, moto_url: str | None) -> dict[str, str]:
    if kind == "sqlite":
        return {}
    assert moto_url is not None
    return {
        "OTM_REGISTRY": "dynamodb",
        "OTM_DYNAMODB_ENDPOINT_URL": moto_url,
        "OTM_DYNAMODB_TABLE": "tenants",
        **FAKE_AWS_ENV,
    }


async def open_registry(
    kind: str, data_dir: Path, moto_url: str | None, *, seeding: bool = True
) -> Registry:
    if kind == "sqlite":
        from daemon.adapters.registry_sqlite import SqliteRegistry

        registry = SqliteRegistry(data_dir / "registry.sqlite3")
        if seeding:  # this connection skips the per-insert fsync (the daemon's does not)
            registry._conn.execute("PRAGMA synchronous=OFF")
        return registry
    from daemon.adapters.registry_dynamodb import DynamoRegistry

    for key, value in FAKE_AWS_ENV.items():
        os.environ.setdefault(key, value)
    return await DynamoRegistry.open(table="tenants", region="us-east-1", endpoint_url=moto_url)


async def seed_registry(registry: Registry, sizes: Sizes, pods: dict[str, dict[str, Any]]) -> None:
    tenants = [seed_tenant(n, pods) for n in range(sizes.registered)]
    if hasattr(registry, "table"):  # DynamoDB: BatchWriteItem, 25 items a request
        await seed_dynamodb(registry, tenants)
        return
    await asyncio.to_thread(seed_sqlite, registry, tenants)


def seed_sqlite(registry: Any, tenants: list[Tenant]) -> None:
    """One transaction of plain INSERTs (the adapter's own row format): 100,000 rows in
    about a second, where 100,000 ``create`` calls (a thread hop each) take minutes."""
    from daemon.model import tenant_to_record

    rows = (
        (t.tenant_id, t.status.value, t.version, json.dumps(tenant_to_record(t))) for t in tenants
    )
    conn = registry._conn
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tenants (tenant_id, status, version, record) VALUES (?, ?, ?, ?)", rows
    )
    conn.execute("COMMIT")


async def seed_dynamodb(registry: Any, tenants: list[Tenant]) -> None:
    from daemon.adapters.registry_dynamodb import tenant_to_item

    batches = [tenants[i : i + 25] for i in range(0, len(tenants), 25)]
    gate = asyncio.Semaphore(8)

    def write(batch: list[Tenant]) -> None:
        requests: Any = [{"PutRequest": {"Item": tenant_to_item(t)}} for t in batch]
        while requests:
            answer = registry._client.batch_write_item(RequestItems={registry.table: requests})
            requests = answer.get("UnprocessedItems", {}).get(registry.table, [])

    async def one(batch: list[Tenant]) -> None:
        async with gate:
            await asyncio.to_thread(write, batch)

    await asyncio.gather(*(one(b) for b in batches))


def seed_tenant(n: int, pods: dict[str, dict[str, Any]]) -> Tenant:
    now = datetime.now(UTC)
    tenant_id = tenant_name(n)
    pod = pods.get(tenant_id)
    if pod is None:
        return Tenant(tenant_id=tenant_id, bot_token=f"{n}:scale", last_active_at=now)
    ip = pod["status"]["podIP"]
    return Tenant(
        tenant_id=tenant_id,
        bot_token=f"{n}:scale",
        status=TenantStatus.RUNNING,
        endpoint=f"http://{ip}:{names.OPENCLAW_WEBHOOK_PORT}{m.WEBHOOK_PATH}",
        gateway_url=f"http://{ip}:{names.OPENCLAW_GATEWAY_PORT}",
        pod_name=pod["metadata"]["name"],
        last_active_at=now,
    )


# -- pods ----------------------------------------------------------------------------------------
async def seed_pods(cluster: FakeK8s, count: int) -> dict[str, dict[str, Any]]:
    """Tenant pods t00000..: the first through the API (the same request the daemon's
    runtime makes, so the manifest is checked end to end), the rest straight into the fake
    API server's store (the same create path minus HTTP: 10,000 pods in seconds); the fake
    kubelet makes them Ready."""
    api = await open_api_client(str(cluster.kubeconfig_path))
    core: Any = client.CoreV1Api(api)
    try:
        if count:
            await call_json(core.create_namespaced_secret, NS, seed_secret(0))
            await call_json(core.create_namespaced_pod, NS, seed_pod(0))
    finally:
        await api.close()
    store = cluster.server.store
    for n in range(1, count):
        store.create(SECRETS, NS, seed_secret(n))  # the pod mounts it: no Secret, no start
        store.create(PODS, NS, seed_pod(n))
        if n % 500 == 0:
            await asyncio.sleep(0)  # let the kubelet and the watchers keep up
    deadline = time.monotonic() + 120 + count / 100
    while True:
        pods = cluster.server.store.snapshot(PODS, NS)
        ready = {
            m.pod_tenant(p): p
            for p in pods
            if (p.get("status") or {}).get("podIP") and p["status"].get("phase") == "Running"
        }
        if len(ready) >= count:
            return {k: v for k, v in ready.items() if k is not None}
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ready)}/{count} pods became Running")
        await asyncio.sleep(0.2)


def seed_secret(n: int) -> dict[str, Any]:
    """The tenant's Secret as the runtime writes it before the pod (what the pod mounts)."""
    tenant_id = tenant_name(n)
    launch = AgentLaunch(tenant_id, f"{n}:scale", "secret", "gateway", "hooks")
    return m.tenant_secret(launch, "{}", namespace=NS)


def seed_pod(n: int) -> dict[str, Any]:
    """The tenant's pod without its probes: no process answers them here, and the fake
    kubelet would probe 10,000 pods many times a second and restart each one as its
    startup probe gives up (churn a healthy cluster does not have: a real kubelet's
    passing probes write nothing to the API)."""
    pod = m.tenant_pod(tenant_name(n), settings=POD_SETTINGS)
    for container in pod["spec"]["containers"]:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            container.pop(probe, None)
    return pod


def tenant_name(n: int) -> str:
    return f"t{n:06d}"


async def informer_times(cluster: FakeK8s) -> tuple[float, float]:
    """(initial list, re-list) of the daemon's PodInformer against the cluster."""
    api = await open_api_client(str(cluster.kubeconfig_path))
    informer = PodInformer(api, NS)
    try:
        started = time.monotonic()
        await informer.start()
        initial = time.monotonic() - started
        # A re-list (what a 410 Gone triggers): the same list, diffed against the cache.
        started = time.monotonic()
        await informer._list()
        relist = time.monotonic() - started
        return initial, relist
    finally:
        await informer.stop()
        await api.close()


# -- the daemon ----------------------------------------------------------------------------------
def daemon_env(cluster: FakeK8s, kind: str, moto_url: str | None) -> dict[str, str]:
    return {
        "OTM_RUNTIME": "kubernetes",
        "OTM_KUBECONFIG": str(cluster.kubeconfig_path),
        "OTM_TENANT_NAMESPACE": NS,
        "OTM_DAEMON_NAMESPACE": names.DAEMON_NAMESPACE,
        **registry_env(kind, moto_url),
    }


@contextlib.asynccontextmanager
async def running_daemon(
    data_dir: Path, redis_url: str, telegram: FakeTelegram, env: dict[str, str]
) -> AsyncIterator[tuple[Daemon, float]]:
    daemon = Daemon(data_dir, redis_url, telegram, **env)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    await daemon.start()
    elapsed = time.monotonic() - started
    try:
        yield daemon, elapsed
    finally:
        await daemon.stop(timeout=60)


def informer_list_time(daemon: Daemon) -> float:
    """From the daemon's log: how long its pod informer's first list took."""
    found = re.search(r"pod informer: \d+ pods listed in ([\d.]+) s", daemon.log_tail(400))
    return float(found.group(1)) if found else float("nan")


def daemon_pid(daemon: Daemon) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


async def settle_rss(pid: int, seconds: float) -> int:
    """RSS after ``seconds`` (start-up work, first resync), the max seen meanwhile."""
    seen = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen = max(seen, rss_bytes(pid))
        await asyncio.sleep(0.25)
    return max(seen, rss_bytes(pid))


class LostEvents:
    """instance_lost events from the daemon (published after the registry write)."""

    def __init__(self, redis_url: str) -> None:
        self.redis = aioredis.Redis.from_url(redis_url)
        self.pubsub = self.redis.pubsub()
        self.seen: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.subscribe(EVENTS_CHANNEL)
        self._task = asyncio.create_task(self._run(), name="lost-events")

    async def _run(self) -> None:
        async for message in self.pubsub.listen():
            if message.get("type") != "message":
                continue
            event = json.loads(message["data"])
            if event.get("kind") == "instance_lost":
                self.seen.setdefault(event["tenant_id"], time.monotonic())
                self.changed.set()

    async def wait(self, tenant_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(t in self.seen for t in tenant_ids):
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = [t for t in tenant_ids if t not in self.seen]
                raise TimeoutError(f"no registry change for {len(missing)} failed pods")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.changed.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()


async def registry_round_trips(
    kind: str, data_dir: Path, moto_url: str | None, sizes: Sizes, count: int = 40
) -> list[float]:
    """What the reconciler does per failure, from this process: get, then a conditional
    update of an idle tenant's record (a no-op change), timed."""
    registry = await open_registry(kind, data_dir, moto_url, seeding=False)
    times = []
    try:
        for n in range(count):
            tenant_id = tenant_name(sizes.registered - 1 - n)
            started = time.monotonic()
            tenant = await registry.get(tenant_id)
            await registry.update(
                tenant_id,
                if_status={tenant.status},
                if_version=tenant.version,
                status_reason=tenant.status_reason,
            )
            times.append(time.monotonic() - started)
    finally:
        await registry.close()
    return times


async def internal_mean(daemon: Daemon) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    _, text = await daemon.api("GET", "/metrics")
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "otm_pod_failure_to_registry_seconds":
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total = sample.value
                elif sample.name.endswith("_count"):
                    count = sample.value
    return total / count if count else float("nan")


async def run_registry(
    kind: str, root: Path, telegram: FakeTelegram, sizes: Sizes, moto_url: str | None
) -> Result:
    result = Result(kind)
    redis = BenchRedis(root / f"{kind}-redis", fsync="everysec")
    redis.start()
    try:
        (root / kind).mkdir()
        async with running_otm_k8s(
            root / kind,
            namespaces=("default", NS, names.DAEMON_NAMESPACE),
            bookmark_interval=1.0,
            history_limit=100_000,
        ) as cluster:
            # Baseline: an idle daemon (no tenants, no pods).
            async with running_daemon(
                root / f"{kind}-idle", redis.url, telegram, daemon_env(cluster, kind, moto_url)
            ) as (daemon, elapsed):
                result.idle_start_s = elapsed
                result.idle_rss = await settle_rss(daemon_pid(daemon), 3.0)
            started = time.monotonic()
            pods = await seed_pods(cluster, sizes.running)
            print(f"  {kind}: {len(pods)} pods Ready in {time.monotonic() - started:.1f}s")
            started = time.monotonic()
            registry = await open_registry(kind, root / f"{kind}-data", moto_url)
            try:
                await seed_registry(registry, sizes, pods)
            finally:
                await registry.close()
            print(f"  {kind}: {sizes.registered} tenants in {time.monotonic() - started:.1f}s")
            events = LostEvents(redis.url)
            await events.start()
            try:
                async with running_daemon(
                    root / f"{kind}-data", redis.url, telegram, daemon_env(cluster, kind, moto_url)
                ) as (daemon, elapsed):
                    result.start_s = elapsed
                    result.informer_start_s = informer_list_time(daemon)
                    pid = daemon_pid(daemon)
                    result.rss = await settle_rss(pid, SETTLE_S)
                    victims = sorted(pods)[: sizes.sequential_failures + sizes.burst_failures]
                    for tenant_id in victims[: sizes.sequential_failures]:
                        name = pods[tenant_id]["metadata"]["name"]
                        t0 = time.monotonic()
                        await cluster.server.fail_pod(NS, name)
                        await events.wait([tenant_id], 10)
                        result.failures.append(events.seen[tenant_id] - t0)
                        await asyncio.sleep(0.01)
                    burst = victims[sizes.sequential_failures :]
                    t0 = time.monotonic()
                    await asyncio.gather(
                        *(cluster.server.fail_pod(NS, pods[t]["metadata"]["name"]) for t in burst)
                    )
                    await events.wait(burst, 20)
                    result.burst = [events.seen[t] - t0 for t in burst]
                    result.internal_mean_s = await internal_mean(daemon)
                    result.registry_rtt = await registry_round_trips(
                        kind, root / f"{kind}-data", moto_url, sizes
                    )
                    result.peak_rss = peak_rss_bytes(pid)
                    status, body = await daemon.api("GET", "/v1/tenants?status=running")
                    if status == 200:  # else (moto at 100,000: too slow) lost stays unknown
                        result.lost = sizes.running - len(body["items"])
                    else:
                        print(f"  {kind}: listing running tenants answered {status}: {body}")
            finally:
                await events.close()
    finally:
        redis.stop()
    return result


def capacity_figures(result: Result, sizes: Sizes, informer: InformerResult) -> list[Figure]:
    """For the capacity model: what one more tenant costs the daemon. Running: the pod
    informer's cache per pod (measured on its own); registered: the rest of the RSS above
    the idle daemon, per registered tenant (so it includes the running ones' records)."""
    k = result.kind
    per_running = informer.cache / max(informer.pods, 1)
    rest = result.rss - result.idle_rss - per_running * sizes.running
    per_registered = rest / max(sizes.registered, 1)
    # Tenants in the bench's mix (1 running in 10) that fit under the RSS bar.
    mix = per_registered + per_running * sizes.running / max(sizes.registered, 1)
    fit = (RSS_TARGET - result.idle_rss) / mix if mix > 0 else float("inf")
    per_10k = (result.start_s - result.idle_start_s) / max(sizes.registered / 10_000, 1e-9)
    return [
        Figure(
            f"{k}: memory per running tenant (informer cache)",
            "-",
            f"{per_running / 1024:.1f} KB",
            "-",
            "-",
            "info",
        ),
        Figure(
            f"{k}: memory per registered tenant (RSS above idle, less the informer's)",
            "-",
            f"{per_registered / 1024:.2f} KB",
            f"{rest / MB:.0f} MB for {sizes.registered:,}",
            "-",
            "info",
        ),
        Figure(
            f"{k}: tenants per daemon under 500 MB at this mix (1 running in "
            f"{sizes.registered // max(sizes.running, 1)})",
            "-",
            f"{fit:,.0f}",
            f"idle daemon {result.idle_rss / MB:.0f} MB",
            "-",
            "info",
        ),
        Figure(
            f"{k}: start-up per 10,000 registered (above the idle daemon's)",
            "-",
            f"{per_10k:.2f} s",
            f"informer list of {informer.pods:,} pods {ms(informer.list_s)}",
            "-",
            "info",
        ),
    ]


def figures(result: Result, sizes: Sizes) -> list[Figure]:
    k = result.kind
    seq50, seq99 = percentile(result.failures, 0.5), percentile(result.failures, 0.99)
    b50, b99 = percentile(result.burst, 0.5), percentile(result.burst, 0.99)
    every = result.failures + result.burst
    rtt50, rtt99 = percentile(result.registry_rtt, 0.5), percentile(result.registry_rtt, 0.99)
    a99 = percentile(every, 0.99)
    rss_rows = (
        (f"daemon RSS, {sizes.registered:,} registered / {sizes.running:,} running", result.rss),
        (f"daemon peak RSS (after {len(every)} pod failures)", result.peak_rss),
    )
    rows = [
        Figure(
            f"{k}: {what}",
            "< 500 MB",
            f"{rss / MB:.0f} MB",
            f"idle daemon {result.idle_rss / MB:.0f} MB",
            ratio(rss, result.idle_rss),
            verdict_of(rss < RSS_TARGET),
        )
        for what, rss in rss_rows
    ]
    rows += [
        Figure(
            f"{k}: daemon start-up (spawn → ready)",
            "< 10 s",
            f"{result.start_s:.2f} s",
            f"idle daemon {result.idle_start_s:.2f} s",
            ratio(result.start_s, result.idle_start_s),
            verdict_of(result.start_s < START_TARGET_S),
        ),
        Figure(
            f"{k}: of the start-up, the informer's first list ({sizes.running:,} pods)",
            "-",
            f"{result.informer_start_s:.2f} s",
            f"start-up {result.start_s:.2f} s",
            ratio(result.informer_start_s, result.start_s),
            "info",
        ),
        Figure(
            f"{k}: pod failure → registry, one at a time, p50 / p99",
            "< 1 s p99",
            f"{ms(seq50)} / {ms(seq99)}",
            f"registry get+update {ms(rtt50)} / {ms(rtt99)}",
            f"{ratio(seq50, rtt50)} / {ratio(seq99, rtt99)}",
            verdict_of(seq99 < LATENCY_TARGET_S),
        ),
        Figure(
            f"{k}: pod failure → registry, daemon-internal mean (histogram)",
            "-",
            ms(result.internal_mean_s),
            "event received → registry written",
            "-",
            "info",
        ),
        Figure(
            f"{k}: pod failure → registry, burst of {len(result.burst)}, p50 / p99",
            "< 1 s p99",
            f"{ms(b50)} / {ms(b99)}",
            f"one at a time p99 {ms(seq99)}",
            ratio(b99, seq99),
            verdict_of(b99 < LATENCY_TARGET_S),
        ),
        Figure(
            f"{k}: pod failure → registry, all {len(every)} p99",
            "< 1 s p99",
            ms(a99),
            "-",
            "-",
            verdict_of(a99 < LATENCY_TARGET_S and result.lost == len(every)),
        ),
    ]
    return rows


@dataclass
class InformerResult:
    empty_list_s: float = 0.0
    empty_relist_s: float = 0.0
    list_s: float = 0.0
    relist_s: float = 0.0
    empty_held: int = 0
    """Python memory the informer holds after its first list, 0 pods (the baseline)."""
    held: int = 0
    """The same with the running pods listed: the cache."""
    peak: int = 0
    """Peak Python memory during that list (the response and its parse)."""
    pods: int = 0
    rss: int = 0
    """RSS the informer's process gained by that list (the cache, and the peak's pages
    the allocator kept)."""

    @property
    def cache(self) -> int:
        return self.held - self.empty_held


def informer_figures(informer: InformerResult, running: int) -> list[Figure]:
    per_pod = informer.cache / max(running, 1)
    return [
        Figure(
            f"informer initial list, {running:,} pods",
            "-",
            ms(informer.list_s),
            f"0 pods {ms(informer.empty_list_s)}",
            ratio(informer.list_s, informer.empty_list_s),
            "info",
        ),
        Figure(
            f"informer re-list (after a 410), {running:,} pods",
            "-",
            ms(informer.relist_s),
            f"0 pods {ms(informer.empty_relist_s)}",
            ratio(informer.relist_s, informer.empty_relist_s),
            "info",
        ),
        Figure(
            f"informer cache, {running:,} pods (held after the first list)",
            "-",
            f"{informer.cache / MB:.0f} MB ({per_pod / 1024:.1f} KB a pod)",
            f"peak during the list {informer.peak / MB:.0f} MB",
            f"RSS +{informer.rss / MB:.0f} MB",
            "info",
        ),
    ]


async def informer_memory(cluster: FakeK8s) -> tuple[int, int, int]:
    """The daemon's informer in a process of its own: (held after its first list, peak
    during it, RSS it added)."""
    proc = await asyncio.create_subprocess_exec(
        *python_cmd("-m", "bench.scale_informer_rss", cluster.kubeconfig_path, NS),
        cwd=REPO_ROOT,
        env=project_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.scale_informer_rss exited {proc.returncode}")
    answer = json.loads(out.decode().strip().splitlines()[-1])
    return int(answer["held"]), int(answer["peak"]), int(answer["after"]) - int(answer["before"])


async def informer_section(root: Path, sizes: Sizes) -> InformerResult:
    result = InformerResult()
    (root / "informer").mkdir()
    async with running_otm_k8s(
        root / "informer", namespaces=("default", NS), history_limit=100_000
    ) as cluster:
        result.empty_list_s, result.empty_relist_s = await informer_times(cluster)
        result.empty_held, _, _ = await informer_memory(cluster)
        await seed_pods(cluster, sizes.running)
        result.list_s, result.relist_s = await informer_times(cluster)
        result.held, result.peak, result.rss = await informer_memory(cluster)
        result.pods = sizes.running
    return result


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 / 200 tenants, 40 failures")
    parser.add_argument("--registry", choices=("sqlite", "dynamodb", "both"), default="both")
    parser.add_argument("--tenants", type=int, help="registered tenants (default 100,000)")
    parser.add_argument("--running", type=int, help="running tenants (default 10,000)")
    args = parser.parse_args(argv)
    sizes = Sizes(2_000, 200, 30, 10) if args.quick else Sizes()
    # moto lists a table by walking all of it for every page: 100,000 records make the
    # daemon's sweeps take minutes there (moto's cost, not DynamoDB's), so DynamoDB runs
    # a tenth of the size unless told otherwise.
    moto_sizes = Sizes(2_000, 200, 30, 10) if args.quick else Sizes(10_000, 1_000)
    for each in (sizes, moto_sizes):
        if args.tenants is not None:
            each.registered = args.tenants
        if args.running is not None:
            each.running = args.running
    if sizes.running > sizes.registered:
        parser.error("--running must not exceed --tenants")
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)  # shared machine: keep other load's noise down
    rows: list[Figure] = []
    limit = float(os.environ.get("OTM_BENCH_TIMEOUT_S", str(178 + sizes.registered // 1000)))
    try:
        with scratch_dir("otm-bench-scale-") as root:
            async with (
                asyncio.timeout(limit),
                FakeTelegram(host="127.0.0.1", port=0) as telegram,
            ):
                informer = await informer_section(root, sizes)
                rows += informer_figures(informer, sizes.running)
                kinds = ["sqlite", "dynamodb"] if args.registry == "both" else [args.registry]
                for kind in kinds:
                    kind_sizes = moto_sizes if kind == "dynamodb" else sizes
                    print(
                        f"{kind}: seeding {kind_sizes.registered:,} tenants, "
                        f"{kind_sizes.running:,} pods"
                    )
                    if kind == "dynamodb":
                        with moto_process() as moto_url:
                            result = await run_registry(kind, root, telegram, kind_sizes, moto_url)
                    else:
                        result = await run_registry(kind, root, telegram, kind_sizes, None)
                    rows += figures(result, kind_sizes)
                    rows += capacity_figures(result, kind_sizes, informer)
    except TimeoutError as exc:
        # Bounded run: what finished is still worth printing (and what timed out).
        print(f"\nstopped: {exc or f'after {limit:.0f}s (OTM_BENCH_TIMEOUT_S)'}")
        print("the table is partial")
    print_report("scale (one daemon, fake Kubernetes API, pods without processes)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
