"""Hot path: what the router adds over a direct POST to the same agent.

Setup (one run): a durable redis-server (AOF, appendfsync always, as the
embedded default), the fake Telegram Bot API, one ``python -m daemon`` whose
agents are the zero-work agent (bench/zero_agent.py, acks 200 at once), and
tenants woken before measuring. The daemon process is pinned to CPU 0; the
load generator, the agents and Redis to CPU 1 (the daemon gets one core to
itself: "updates/s on one core").

Measured, each path alternating in blocks so drift hits both alike:

1. one sender, sequential requests: latency router vs direct; the added
   latency is router minus direct at each percentile.
2. 100 concurrent senders (10 tenants; --tenants), paced at the target rate (2,000
   updates/s in total): the same latencies under load. (A closed loop of 100
   senders would measure queueing on a saturated core, not the router.)
   ``--shared-agent``: one agent server answers every tenant (bench/zero_agent_hub.py),
   so ``--tenants 1000`` fits on a small machine.
3. throughput: 100 senders in a closed loop through the router, then the same
   against the agents directly (baseline); updates/s accepted (200) and
   delivered (agent receipt), and the daemon's CPU use.
4. end-to-end delivery latency (POST sent → agent received it), which the
   router's early 200 (after the durable append) does not show.
   Every run checks that each sender's updates to a tenant reached the agent in order.
5. optionally (``--stub``), one sender against the stand-in agent
   (otm.devtools.agent_stub, which persists every update before acking).

Run: ``.venv/bin/python -m bench.hot_path`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    Figure,
    cpus,
    metered_run,
    ms,
    percentile,
    pin,
    print_report,
    ratio,
    scratch_dir,
    spawning_on,
    verdict,
    with_descendants,
)
from bench.httpload import Connection
from bench.redis_server import BenchRedis
from bench.zero_agent_hub import READY_LINE as HUB_READY_LINE
from bench.zero_agent_hub import agent_command
from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import SECRET_HEADER, Daemon
from tests.support.processes import end_process

ZERO_AGENT = f"{sys.executable} -m bench.zero_agent"
TARGET_P50_S = 0.001
TARGET_P99_S = 0.005
TARGET_RATE = 2000.0
DELIVERY_TIMEOUT_S = 60.0
WAKE_ATTEMPTS = 3


@dataclass
class Tenant:
    tenant_id: str
    secret: str
    endpoint: str
    gateway: str


@dataclass
class Ledger:
    """Send and receipt times (monotonic ns) by update_id, for end-to-end latency."""

    sent: dict[int, int] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    arrival: dict[int, int] = field(default_factory=dict)
    """Rank of each update's first receipt: an agent's receipts come in arrival order."""
    order: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    """Update ids sent through the router by (sender's chat, tenant), in send order."""

    def out_of_order(self) -> tuple[int, int]:
        """(updates that reached their agent before an update their sender sent earlier
        to the same tenant, updates checked)."""
        late = checked = 0
        for sent in self.order.values():
            ranks = [self.arrival[u] for u in sent if u in self.arrival]
            checked += len(ranks)
            late += sum(1 for a, b in itertools.pairwise(ranks) if b < a)
        return late, checked

    def e2e(self, update_ids: list[int]) -> list[float]:
        return [(self.received[u] - self.sent[u]) / 1e9 for u in update_ids if u in self.received]


class RouterBusy(RuntimeError):
    """The router answered 503 (Telegram would send the update again later)."""


Target = tuple[dict[str, str], str, Connection, list[int]]
"""A sender's tenant: its headers, router path, direct connection, the ids sent to it."""


class Sender:
    """One simulated Telegram sender, to the router and to the agent directly: for one
    tenant, or taking ``also``'s tenants in turn (to spread 100 senders over more than
    100 tenants). One router connection (its cap is 1,000 by default), one direct
    connection per tenant (each agent has its own port); a sender waits for each
    answer, so its updates to one tenant must reach the agent in the order it sent them."""

    def __init__(
        self,
        tenant: Tenant,
        router_url: str,
        ledger: Ledger,
        chat_id: int,
        also: Sequence[Tenant] = (),
    ) -> None:
        self.tenant = tenant
        self.ledger = ledger
        self.chat_id = chat_id
        self.router = Connection(f"{router_url}/tg/{tenant.tenant_id}")
        self.targets: list[Target] = [
            (
                {"Content-Type": "application/json", SECRET_HEADER: each.secret},
                f"{self.router.path.rsplit('/', 1)[0]}/{each.tenant_id}",
                Connection(each.endpoint),
                sent,
            )
            for each in (tenant, *also)
            for sent in [self.ledger.order.setdefault((chat_id, each.tenant_id), [])]
        ]
        self.turn = itertools.cycle(self.targets)

    async def close(self) -> None:
        await self.router.close()
        for _, _, direct, _ in self.targets:
            await direct.close()

    async def introduce(self) -> int:
        """One update to each of its tenants through the router, each sent again while the
        router answers 503 (what Telegram does); how many 503s. The router's tenant cache
        reads never-seen tenants within a budget (50/s, daemon/msgpath/tenant_cache.py):
        hundreds of tenants' first updates at once are mostly answered 503."""
        refused = 0
        for target in self.targets:
            while True:
                try:
                    await self.post(True, target)
                    break
                except RouterBusy:
                    refused += 1
                    await asyncio.sleep(0.05)
        return refused

    async def post(self, via_router: bool, target: Target | None = None) -> tuple[int, float]:
        """One update (to ``target``, else the next tenant in turn); (update_id, seconds
        until the answer)."""
        headers, router_path, direct, sent = target or next(self.turn)
        update_id = next(self.ledger.ids)
        if via_router:
            # The order checked is the router's: a direct post right after a router post
            # may overtake it (the router answers before it delivers), and that is no
            # reordering by the router.
            sent.append(update_id)
        body = json.dumps(make_text_update(update_id, self.chat_id, "hello")).encode()
        conn = self.router if via_router else direct
        raw = conn.request_bytes(body, headers, path=router_path if via_router else "")
        started = time.monotonic_ns()
        self.ledger.sent[update_id] = started
        status, answer = await conn.send(raw)
        elapsed = (time.monotonic_ns() - started) / 1e9
        if status == 503 and via_router:
            raise RouterBusy(answer.decode(errors="replace"))
        if status != 200:
            where = "router" if via_router else "agent"
            raise RuntimeError(f"{where} answered {status}: {answer!r}")
        return update_id, elapsed


@dataclass
class Block:
    latencies: list[float] = field(default_factory=list)
    update_ids: list[int] = field(default_factory=list)
    wall_s: float = 0.0


async def sequential(sender: Sender, via_router: bool, count: int) -> Block:
    block = Block()
    started = time.monotonic()
    for _ in range(count):
        update_id, elapsed = await sender.post(via_router)
        block.latencies.append(elapsed)
        block.update_ids.append(update_id)
    block.wall_s = time.monotonic() - started
    return block


async def paced(senders: list[Sender], via_router: bool, rate: float, duration_s: float) -> Block:
    """Every sender posts at rate/len(senders) per second, phases spread at random."""
    block = Block()
    interval = len(senders) / rate
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.05
    end = begin + duration_s
    rng = random.Random(7)

    async def run(sender: Sender) -> None:
        due = begin + rng.uniform(0, interval)
        while due < end:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            update_id, elapsed = await sender.post(via_router)
            block.latencies.append(elapsed)
            block.update_ids.append(update_id)
            due += interval

    started = time.monotonic()
    await asyncio.gather(*(run(s) for s in senders))
    block.wall_s = time.monotonic() - started
    return block


async def closed_loop(senders: list[Sender], via_router: bool, duration_s: float) -> Block:
    block = Block()
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s

    async def run(sender: Sender) -> None:
        while loop.time() < end:
            update_id, elapsed = await sender.post(via_router)
            block.latencies.append(elapsed)
            block.update_ids.append(update_id)

    started = time.monotonic()
    await asyncio.gather(*(run(s) for s in senders))
    block.wall_s = time.monotonic() - started
    return block


class Receipts:
    """Collects the agents' receipt times (GET /otm/bench/receipts drains them)."""

    def __init__(self, tenants: list[Tenant], ledger: Ledger, *, shared: bool = False) -> None:
        # One agent server for every tenant (bench/zero_agent_hub.py) drains them all
        # on any tenant's gateway: one request per poll.
        self.gateways = [t.gateway for t in (tenants[:1] if shared else tenants)]
        self.ledger = ledger

    async def collect(self, http: aiohttp.ClientSession) -> None:
        for gateway in self.gateways:
            async with http.get(f"{gateway}/otm/bench/receipts") as resp:
                for update_id, ns in await resp.json():
                    self.ledger.received[int(update_id)] = int(ns)
                    self.ledger.arrival.setdefault(int(update_id), len(self.ledger.arrival))

    async def wait_for(self, http: aiohttp.ClientSession, update_ids: list[int]) -> float:
        """Until every update arrived; returns the monotonic time of the last arrival."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        missing = set(update_ids)
        while True:
            await self.collect(http)
            missing = {u for u in missing if u not in self.ledger.received}
            if not missing:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} updates never reached their agent")
            await asyncio.sleep(0.05)
        return max(self.ledger.received[u] for u in update_ids) / 1e9 if update_ids else 0.0


async def wake_tenants(
    daemon: Daemon, count: int, prefix: str, first_token: int, *, concurrency: int = 1
) -> list[Tenant]:
    """Create and wake ``count`` tenants, ``concurrency`` at a time (in order).

    A wake whose agent failed at once is tried again (up to WAKE_ATTEMPTS): the local
    runtime picks an agent's ports free, then the agent binds them, and over hundreds of
    wakes another socket (an outgoing connection's ephemeral port) now and then takes
    one in between."""
    gate = asyncio.Semaphore(concurrency)
    retried: list[str] = []

    async def wake(n: int) -> Tenant:
        tenant_id = f"{prefix}{n}"
        async with gate:
            secret = await daemon.create_tenant(tenant_id, f"{first_token + n}:bench")
            for _ in range(WAKE_ATTEMPTS):
                status, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/wake?wait=true")
                if status != 503 or "AgentFailed" not in str(body):
                    break
                retried.append(tenant_id)
        if status != 200:
            raise RuntimeError(f"wake of {tenant_id} answered {status}: {body}")
        return Tenant(tenant_id, secret, body["endpoint"], body.get("gateway_url") or "")

    tenants = list(await asyncio.gather(*(wake(n) for n in range(count))))
    if retried:
        print(f"{len(retried)} wake(s) retried after the agent failed at start: {retried[:5]}")
    return tenants


def agent_pids(data_dir: Path) -> list[int]:
    pids = (recorded_agent_pid(p) for p in (data_dir / "agents").glob(f"*/*/{PID_FILE}"))
    return [each for pid in pids if pid is not None for each in with_descendants(pid)]


@dataclass
class Setup:
    daemon: Daemon
    redis: BenchRedis
    load_cpus: set[int] | None


async def start_stack(
    root: Path, telegram: FakeTelegram, agent_command: str | None, name: str, fsync: str
) -> Setup:
    all_cpus = cpus()
    pinned = len(all_cpus) >= 2 and not os.environ.get("OTM_BENCH_NO_PIN")
    daemon_cpus = {all_cpus[0]} if pinned else None
    load_cpus = set(all_cpus[1:]) if pinned else None
    redis = BenchRedis(root / f"{name}-redis", fsync=fsync)
    with spawning_on(load_cpus):
        redis.start()
    env = {"OTM_AGENT_COMMAND": agent_command} if agent_command else {}
    if extra_path := os.environ.get("OTM_BENCH_DAEMON_PYTHONPATH"):
        # Experiments (e.g. hiredis, or uvloop through a sitecustomize) for the daemon only.
        env["PYTHONPATH"] = os.pathsep.join([extra_path, str(Path(__file__).parents[1])])
    # A/B runs: daemon settings for this run, e.g. OTM_BENCH_DAEMON_SETTINGS=gc_young_threshold=0
    # (comma-separated; the daemon does not inherit OTM_* variables from this process).
    for item in filter(None, os.environ.get("OTM_BENCH_DAEMON_SETTINGS", "").split(",")):
        setting, _, value = item.partition("=")
        env[f"OTM_{setting.strip().upper()}"] = value.strip()
    daemon = Daemon(root / name, redis.url, telegram, **env)
    (root / name).mkdir()
    with spawning_on(daemon_cpus):
        await daemon.start()
    return Setup(daemon, redis, load_cpus)


async def stop_stack(setup: Setup) -> None:
    await setup.daemon.stop()
    setup.redis.stop()


def pin_agents(setup: Setup) -> list[int]:
    pids = agent_pids(setup.daemon.data_dir)
    if setup.load_cpus is not None:
        for pid in pids:
            pin(pid, setup.load_cpus)
    return pids


def latency_rows(
    label: str, direct: Block, router: Block, *, targets: bool
) -> tuple[list[Figure], dict[str, float]]:
    d50, d99 = percentile(direct.latencies, 0.5), percentile(direct.latencies, 0.99)
    r50, r99 = percentile(router.latencies, 0.5), percentile(router.latencies, 0.99)
    added50, added99 = r50 - d50, r99 - d99
    rows = [
        Figure(
            f"{label}: added latency {name}",
            f"< {target * 1000:.0f} ms" if targets else "-",
            ms(added),
            f"direct {name} {ms(direct_s)}",
            f"router/direct {ratio(router_s, direct_s)}",
            verdict(added < target if targets else None),
        )
        for name, added, direct_s, router_s, target in (
            ("p50", added50, d50, r50, TARGET_P50_S),
            ("p99", added99, d99, r99, TARGET_P99_S),
        )
    ]
    return rows, {"direct_p50": d50, "direct_p99": d99, "router_p50": r50, "router_p99": r99}


def e2e_rows(label: str, ledger: Ledger, direct: Block, router: Block) -> list[Figure]:
    de = ledger.e2e(direct.update_ids)
    re_ = ledger.e2e(router.update_ids)
    d50, d99 = percentile(de, 0.5), percentile(de, 0.99)
    r50, r99 = percentile(re_, 0.5), percentile(re_, 0.99)
    return [
        Figure(
            f"{label}: POST→agent receipt p50",
            "-",
            ms(r50),
            f"direct {ms(d50)}",
            f"{ratio(r50, d50)} (+{ms(r50 - d50)})",
            "info",
        ),
        Figure(
            f"{label}: POST→agent receipt p99",
            "-",
            ms(r99),
            f"direct {ms(d99)}",
            f"{ratio(r99, d99)} (+{ms(r99 - d99)})",
            "info",
        ),
    ]


def merge(blocks: list[Block]) -> Block:
    out = Block()
    for b in blocks:
        out.latencies += b.latencies
        out.update_ids += b.update_ids
        out.wall_s += b.wall_s
    return out


async def alternate(
    rounds: int,
    run: Callable[[bool], Awaitable[Block]],
    receipts: Receipts,
    http: aiohttp.ClientSession,
) -> tuple[Block, Block]:
    """Direct and router blocks in turns; each router block is fully delivered before
    the next block starts (no backlog carried over)."""
    direct: list[Block] = []
    router: list[Block] = []
    for _ in range(rounds):
        direct.append(await run(False))
        router.append(await run(True))
        await receipts.wait_for(http, router[-1].update_ids + direct[-1].update_ids)
    return merge(direct), merge(router)


async def zero_agent_scenario(
    root: Path,
    telegram: FakeTelegram,
    quick: bool,
    fsync: str,
    profile: Path | None,
    tenants: int = 10,
    shared_agent: bool = False,
) -> list[Figure]:
    scale = 0.2 if quick else 1.0
    hub = await start_hub() if shared_agent else None
    command = agent_command(hub[1]) if hub is not None else ZERO_AGENT
    setup = await start_stack(root, telegram, command, "zero", fsync)
    daemon = setup.daemon
    figures: list[Figure] = []
    ledger = Ledger()
    senders: list[Sender] = []
    try:
        solo = (await wake_tenants(daemon, 1, "solo", 5000))[0]
        fleet = await wake_tenants(daemon, tenants, "hot", 6000, concurrency=8)
        # The hub was started from this process (already on the load generator's CPUs).
        agents = [hub[0].pid] if hub is not None else pin_agents(setup)
        receipts = Receipts([solo, *fleet], ledger, shared=hub is not None)
        one = Sender(solo, daemon.router_url, ledger, chat_id=1)
        # Sender n takes tenants n, n + 100, ...: every tenant gets load (and one sender
        # only, when there are 100 tenants or more).
        senders = [one] + [
            Sender(
                fleet[n % len(fleet)],
                daemon.router_url,
                ledger,
                chat_id=100 + n,
                also=fleet[n + 100 :: 100],
            )
            for n in range(100)
        ]
        many = senders[1:]
        refused = sum(await asyncio.gather(*(s.introduce() for s in senders)))
        if refused:
            print(f"router 503s while its cache first read {tenants + 1:,} tenants: {refused:,}")
        assert daemon.proc is not None
        pids = {"daemon": daemon.proc.pid, "redis": setup.redis.pid}
        pids.update({f"agent{n}": pid for n, pid in enumerate(agents)})
        pids["loadgen"] = os.getpid()
        async with aiohttp.ClientSession() as http:
            # Warm-up: connections, caches, the JIT-less interpreter's own caches.
            await alternate(1, lambda r: sequential(one, r, int(300 * scale)), receipts, http)
            await alternate(1, lambda r: paced(many, r, TARGET_RATE, 1.0 * scale), receipts, http)

            # 1. one sender.
            count = int(1000 * scale)
            d1, r1 = await alternate(4, lambda r: sequential(one, r, count), receipts, http)
            rows, _ = latency_rows("1 sender", d1, r1, targets=True)
            figures += rows + e2e_rows("1 sender", ledger, d1, r1)

            # 2. 100 senders at the target rate.
            gc_before = await gc_runs(daemon)
            d100, r100 = await alternate(
                3, lambda r: paced(many, r, TARGET_RATE, 3.0 * scale), receipts, http
            )
            gc_after = await gc_runs(daemon)
            rows, _ = latency_rows("100 senders @2,000/s", d100, r100, targets=True)
            figures += rows + e2e_rows("100 senders @2,000/s", ledger, d100, r100)
            achieved = len(r100.update_ids) / r100.wall_s
            # A full collection stops the daemon's loop for its whole heap (~200 ms at 1,000
            # tenants): a few are the paced p99 (Settings.gc_young_threshold).
            young, full = gc_after[0] - gc_before[0], gc_after[1] - gc_before[1]
            figures.append(
                Figure(
                    "100 senders: daemon's full GC collections",
                    "-",
                    f"{full:.0f} in {d100.wall_s + r100.wall_s:.1f} s",
                    f"young-generation runs {young:,.0f}",
                    "-",
                    "info",
                )
            )
            figures.append(
                Figure(
                    "100 senders: offered rate achieved",
                    "2,000/s",
                    f"{achieved:,.0f}/s",
                    f"direct {len(d100.update_ids) / d100.wall_s:,.0f}/s",
                    "-",
                    "info",
                )
            )

            # 3. throughput, closed loop.
            duration = 6.0 * scale
            base = await closed_loop(many, False, duration)
            await receipts.wait_for(http, base.update_ids)
            forward_before = await forward_stats(daemon)
            profiler = start_profiler(daemon.proc.pid, profile)
            run = await metered_run(
                pids, closed_loop(many, True, duration), lambda ids: receipts.wait_for(http, ids)
            )
            await stop_profiler(profiler)
            forward_after = await forward_stats(daemon)
            posts = forward_after[1] - forward_before[1]
            mean_post = (forward_after[0] - forward_before[0]) / posts if posts else float("nan")
            n, meter = run.updates, run.meter
            accepted, delivered = run.accepted_per_s, run.delivered_per_s
            direct_rate = len(base.update_ids) / base.wall_s
            daemon_cpu = meter.used["daemon"]
            per_core = n / daemon_cpu if daemon_cpu > 0 else float("nan")
            figures += [
                Figure(
                    "throughput: accepted (200) updates/s",
                    ">= 2,000/s",
                    f"{accepted:,.0f}/s",
                    f"direct to agents {direct_rate:,.0f}/s",
                    ratio(accepted, direct_rate),
                    verdict(accepted >= TARGET_RATE),
                ),
                Figure(
                    "throughput: delivered updates/s (end to end)",
                    ">= 2,000/s",
                    f"{delivered:,.0f}/s",
                    f"direct to agents {direct_rate:,.0f}/s",
                    ratio(delivered, direct_rate),
                    verdict(delivered >= TARGET_RATE),
                ),
                Figure(
                    "throughput: updates per daemon CPU-second",
                    ">= 2,000",
                    f"{per_core:,.0f}",
                    f"daemon core busy {100 * meter.utilisation()['daemon']:.0f}%",
                    "-",
                    verdict(per_core >= TARGET_RATE),
                ),
            ]
            shares = meter.utilisation()
            agents_busy = sum(v for k, v in shares.items() if k.startswith("agent"))
            busy = ", ".join(
                f"{k} {100 * v:.0f}%"
                for k, v in (*shares.items(), ("agents", agents_busy))
                if k in ("daemon", "redis", "loadgen", "agents")
            )
            print(f"\nCPU during the router throughput run (% of one core): {busy}")
            print(f"daemon → agent POSTs (otm_forward_seconds): {posts:.0f}, mean {ms(mean_post)}")
            late, checked = ledger.out_of_order()
            figures.append(
                Figure(
                    f"order kept per tenant ({tenants:,} tenants"
                    f"{', one agent server' if hub is not None else ''})",
                    "0 out of order",
                    f"{late} of {checked:,}",
                    "-",
                    "-",
                    verdict(late == 0 and checked > 0),
                )
            )
    finally:
        for sender in senders:
            await sender.close()
        await stop_stack(setup)
        if hub is not None:
            await stop_hub(hub[0])
    return figures


async def start_hub() -> tuple[asyncio.subprocess.Process, int]:
    """One zero-work agent server for every tenant (bench/zero_agent_hub.py); its port."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.zero_agent_hub", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = (await proc.stdout.readline()).decode()
    if not line.startswith(HUB_READY_LINE):
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"zero agent hub did not start: {line!r}")
    return proc, int(line.removeprefix(HUB_READY_LINE))


async def stop_hub(proc: asyncio.subprocess.Process) -> None:
    await end_process(proc, grace_s=10)


async def daemon_samples(daemon: Daemon) -> dict[tuple[str, tuple[str, ...]], float]:
    """The daemon's /metrics: (name, label values) → value."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = await daemon.api("GET", "/metrics")
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def forward_stats(daemon: Daemon) -> tuple[float, float]:
    """(sum, count) of the daemon's otm_forward_seconds (its POSTs to agents)."""
    samples = await daemon_samples(daemon)
    return samples[("otm_forward_seconds_sum", ())], samples[("otm_forward_seconds_count", ())]


async def gc_runs(daemon: Daemon) -> tuple[float, float]:
    """The daemon's garbage-collector runs so far: (young generation, full collections)."""
    samples = await daemon_samples(daemon)
    runs = "python_gc_collections_total"
    return samples[(runs, ("0",))], samples[(runs, ("2",))]


def start_profiler(pid: int, out: Path | None) -> asyncio.subprocess.Process | None:
    """py-spy (if installed) sampling the daemon during the throughput run."""
    return None if out is None else _PROFILER_FACTORY(pid, out)


def _spawn_py_spy(pid: int, out: Path) -> asyncio.subprocess.Process | None:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        print("py-spy is not installed: no profile")
        return None
    import subprocess

    return subprocess.Popen(  # type: ignore[return-value]
        [binary, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "250"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


_PROFILER_FACTORY = _spawn_py_spy


async def stop_profiler(profiler: Any) -> None:
    if profiler is None:
        return
    profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    await asyncio.to_thread(profiler.wait, 30)


async def stub_scenario(
    root: Path, telegram: FakeTelegram, quick: bool, fsync: str
) -> list[Figure]:
    """One sender against the stand-in agent (persists each update before acking)."""
    setup = await start_stack(root, telegram, None, "stub", fsync)
    daemon = setup.daemon
    ledger = Ledger()
    sender: Sender | None = None
    try:
        tenant = (await wake_tenants(daemon, 1, "stub", 7000))[0]
        pin_agents(setup)
        sender = Sender(tenant, daemon.router_url, ledger, chat_id=9)
        count = 40 if quick else 200
        direct: list[Block] = []
        router: list[Block] = []
        await sequential(sender, True, 20)  # warm-up
        for _ in range(2):
            direct.append(await sequential(sender, False, count))
            router.append(await sequential(sender, True, count))
        label = "stand-in agent, 1 sender"
        rows, _ = latency_rows(label, merge(direct), merge(router), targets=False)
        return rows
    finally:
        if sender is not None:
            await sender.close()
        await stop_stack(setup)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_path", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--stub", action="store_true", help="also measure the stand-in agent")
    parser.add_argument(
        "--fsync",
        choices=("always", "everysec", "no"),
        default="everysec",
        help="Redis appendfsync policy (the embedded default is always)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the daemon (file)")
    parser.add_argument(
        "--tenants",
        type=int,
        default=10,
        help="tenants the 100 senders spread over (one zero-work agent process each)",
    )
    parser.add_argument(
        "--shared-agent",
        action="store_true",
        help="one zero-work agent server answers every tenant (bench/zero_agent_hub.py; "
        "what makes --tenants 1000 fit on a small machine)",
    )
    args = parser.parse_args(argv)
    # The machine may be shared (other test runs): a higher priority for everything
    # this benchmark starts (children inherit it) keeps their noise down.
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    all_cpus = cpus()
    if len(all_cpus) >= 2 and not os.environ.get("OTM_BENCH_NO_PIN"):
        os.sched_setaffinity(0, set(all_cpus[1:]))  # the load generator's core(s)
        print(f"daemon on CPU {all_cpus[0]}; load generator, agents, Redis on {all_cpus[1:]}")
    else:
        print("one CPU only: nothing pinned (figures are then pessimistic)")
    print(f"Redis: AOF with appendfsync {args.fsync}")
    figures: list[Figure] = []
    with scratch_dir("otm-bench-hot-") as root:
        async with (
            asyncio.timeout(170 + args.tenants),  # a second per extra agent to wake
            FakeTelegram(host="127.0.0.1", port=0) as telegram,
        ):
            figures += await zero_agent_scenario(
                root,
                telegram,
                args.quick,
                args.fsync,
                args.profile,
                args.tenants,
                args.shared_agent,
            )
            if args.stub:
                figures += await stub_scenario(root, telegram, args.quick, args.fsync)
    print_report("hot path (zero-work agent unless stated)", figures)
    missed = [f.name for f in figures if f.verdict == "MISS"]
    if missed:
        print(f"\nMISSED: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
