"""Wake: the control plane's overhead on top of the agent's own boot.

Local runtime (one ``python -m daemon``, the stand-in agent with
``OTM_AGENT_BOOT_DELAY_S=0``), interleaved in rounds so noise hits all alike:

* baseline: the agent process started directly, spawn → ready (gateway
  ``/readyz`` says ready and the webhook listener answers, as the runtime
  requires), polled every 2 ms;
* a message-triggered wake (Telegram update to an idle tenant): per-phase
  durations from the daemon's ``otm_wake_phase_seconds`` (the delta of each
  phase's ``_sum`` across the wake: exactly that wake's value), including
  ``first_delivery`` (readiness seen → update acked by the agent);
* an operator wake (``POST /v1/tenants/{id}/wake?wait=true``) timed from outside.

Kubernetes runtime against the fake API server (tests/support/fake_k8s) whose kubelet
runs the agent as real processes: cold wake (pod created) vs warm wake (a pre-booted
warm pod claimed and bound), from outside and from ``pod_create_to_ready`` /
``pod_claim_to_ready``.

Run: ``.venv/bin/python -m bench.wake`` (``--quick`` for a smoke run, ``--no-k8s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Figure, ms, percentile, print_report, ratio, scratch_dir, verdict
from bench.redis_server import BenchRedis
from daemon.adapters.local.logs import line_time
from daemon.agent.activity import agent_answers
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.support.agent_stub import make_stub_tenant
from tests.support.fake_cluster import kubernetes_daemon_env, running_pod_cluster
from tests.support.polling import eventually
from tests.support.servers import project_env

TARGET_S = 0.100
PHASES = ("lock", "registry", "runtime_start", "ready", "first_delivery")
K8S_PHASES = ("pod_create_to_ready", "pod_claim_to_ready")
AGENT = [sys.executable, "-m", "otm.devtools.agent_stub"]


# -- /metrics -----------------------------------------------------------------------------
async def phase_sums(daemon: Daemon) -> dict[str, tuple[float, float]]:
    """phase → (sum, count) of otm_wake_phase_seconds."""
    status, text = await daemon.api("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "otm_wake_phase_seconds":
            continue
        for sample in family.samples:
            phase = sample.labels.get("phase", "")
            entry = out.setdefault(phase, [0.0, 0.0])
            if sample.name.endswith("_sum"):
                entry[0] = sample.value
            elif sample.name.endswith("_count"):
                entry[1] = sample.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def deltas(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Each phase observed once between the scrapes → its duration."""
    out = {}
    for phase, (total, count) in after.items():
        old_total, old_count = before.get(phase, (0.0, 0.0))
        if count - old_count == 1:
            out[phase] = total - old_total
    return out


# -- baseline: the agent on its own ----------------------------------------------------------
async def agent_boot(root: Path, api_root: str, n: int, http: aiohttp.ClientSession) -> float:
    """Spawn → ready of the stand-in agent started directly (as the runtime starts it)."""
    tenant = make_stub_tenant(root, api_root, tenant_id=f"base{n}", bot_token=f"{9000 + n}:b")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTM_", "OPENCLAW_"))}
    env.update(
        project_env(),
        OPENCLAW_STATE_DIR=str(tenant.state_dir),
        OPENCLAW_CONFIG_PATH=str(tenant.config_path),
        HOME=str(tenant.state_dir),
        OTM_AGENT_BOOT_DELAY_S="0",
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *AGENT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    health = tenant.webhook_url.rsplit("/", 1)[0] + "/healthz"
    try:
        async with asyncio.timeout(30):
            while True:
                if await _ready(http, f"{tenant.gateway_url}/readyz", json_ready=True) and (
                    await _ready(http, health)
                ):
                    return time.monotonic() - started
                await asyncio.sleep(0.002)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def _ready(http: aiohttp.ClientSession, url: str, *, json_ready: bool = False) -> bool:
    return await agent_answers(http, url, aiohttp.ClientTimeout(total=1), json_ready=json_ready)


# -- local runtime ----------------------------------------------------------------------------
async def message_wake(daemon: Daemon, tenant_id: str, secret: str) -> dict[str, float]:
    before = await phase_sums(daemon)
    await daemon.send_text(tenant_id, secret, 1, 1, "wake up")
    seen: dict[str, float] = {}

    async def delivered() -> bool:
        nonlocal seen
        seen = deltas(before, await phase_sums(daemon))
        return "first_delivery" in seen

    # Every 5 ms: a check is one metrics scrape.
    await eventually(delivered, 30, f"first delivery to {tenant_id}", interval=0.005)
    return seen


async def operator_wake(daemon: Daemon, tenant_id: str) -> tuple[float, dict[str, float]]:
    before = await phase_sums(daemon)
    started = time.monotonic()
    status, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/wake?wait=true")
    elapsed = time.monotonic() - started
    if status != 200:
        raise RuntimeError(f"wake of {tenant_id}: {status} {body}")
    return elapsed, deltas(before, await phase_sums(daemon))


def boot_from_agent_log(data_dir: Path, tenant_id: str) -> float:
    """The agent's own boot in a daemon wake: the runtime's "[otm] starting" line (stamped
    by the daemon right after the spawn, UTC, µs) to the agent's "telegram ready" line
    (its own timestamp, ms): from then on /readyz says ready."""
    spawned = ready = None
    for line in (data_dir / "agents" / tenant_id / "agent.log").read_text().splitlines():
        if spawned is None and "[otm] starting" in line:
            spawned = line_time(line)
        elif spawned is not None and "telegram ready" in line:
            own = line[28:51]  # the agent's asctime: "YYYY-mm-dd HH:MM:SS,mmm" (local time)
            ready = datetime.strptime(own, "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
            break
    if spawned is None or ready is None:
        raise RuntimeError(f"no start/ready lines in {tenant_id}'s agent log")
    return (ready - spawned).total_seconds()


async def sleep_tenant(daemon: Daemon, tenant_id: str) -> None:
    status, body = await daemon.api("POST", f"/v1/tenants/{tenant_id}/sleep")
    if status != 200:
        raise RuntimeError(f"sleep of {tenant_id}: {status} {body}")


def dist(values: list[float]) -> tuple[float, float]:
    return percentile(values, 0.5), percentile(values, 0.99)


async def local_section(telegram: FakeTelegram, rounds: int, fsync: str) -> list[Figure]:
    with (
        scratch_dir("otm-bench-wake-") as root,
        BenchRedis(root / "redis", fsync=fsync) as redis,
    ):
        daemon = Daemon(root / "data", redis.url, telegram, OTM_AGENT_BOOT_DELAY_S="0")
        (root / "data").mkdir()
        try:
            await daemon.start()
            boots: list[float] = []  # the agent started directly
            in_wake_boots: list[float] = []  # the agent's boot inside each daemon wake
            overhead: list[float] = []  # wake start → readiness seen, minus that boot
            by_phase: dict[str, list[float]] = {p: [] for p in PHASES}
            control: list[float] = []
            operator: list[float] = []
            async with aiohttp.ClientSession() as http:
                for n in range(rounds + 1):  # round 0 warms caches up and is dropped
                    boot = await agent_boot(root / "baseline", telegram.base_url, n, http)
                    msg_id, op_id = f"msg{n}", f"op{n}"
                    secret = await daemon.create_tenant(msg_id, f"{7100 + n}:w")
                    await daemon.create_tenant(op_id, f"{7300 + n}:w")
                    phases = await message_wake(daemon, msg_id, secret)
                    elapsed, _ = await operator_wake(daemon, op_id)
                    await sleep_tenant(daemon, msg_id)
                    await sleep_tenant(daemon, op_id)
                    if n == 0:
                        continue
                    boots.append(boot)
                    operator.append(elapsed)
                    own_boot = boot_from_agent_log(daemon.data_dir, msg_id)
                    in_wake_boots.append(own_boot)
                    to_ready = sum(
                        phases[p] for p in ("lock", "registry", "runtime_start", "ready")
                    )
                    overhead.append(to_ready - own_boot)
                    for phase in PHASES:
                        by_phase[phase].append(phases.get(phase, float("nan")))
                    control.append(phases["lock"] + phases["registry"] + phases["runtime_start"])
        finally:
            await daemon.stop()
    b50, b99 = dist(boots)
    i50, i99 = dist(in_wake_boots)
    o50, o99 = dist(operator)
    v50, v99 = dist(overhead)
    _, c99 = dist(control)
    f50, f99 = dist(by_phase["first_delivery"])
    rows = [
        Figure(
            f"local: phase {phase} p50 / p99",
            "-",
            f"{ms(percentile(by_phase[phase], 0.5))} / {ms(percentile(by_phase[phase], 0.99))}",
            "-",
            "-",
            "info",
        )
        for phase in PHASES
    ]
    rows += [
        Figure(
            "local: agent boot inside the wakes p50 / p99",
            "-",
            f"{ms(i50)} / {ms(i99)}",
            f"started directly {ms(b50)} / {ms(b99)}",
            f"{ratio(i50, b50)} / {ratio(i99, b99)}",
            "info",
        ),
        Figure(
            "local: control plane before the agent (lock+registry+runtime_start) p99",
            "< 100 ms",
            ms(c99),
            f"agent boot p99 {ms(i99)}",
            ratio(c99, i99),
            verdict(c99 < TARGET_S),
        ),
        Figure(
            "local: wake overhead (start→readiness seen, minus agent boot) p50",
            "-",
            ms(v50),
            f"agent boot p50 {ms(i50)}",
            ratio(v50, i50),
            "info",
        ),
        Figure(
            "local: wake overhead (start→readiness seen, minus agent boot) p99",
            "< 100 ms",
            ms(v99),
            f"agent boot p99 {ms(i99)}",
            ratio(v99, i99),
            verdict(v99 < TARGET_S),
        ),
        Figure(
            "local: delivery after readiness (first_delivery) p99",
            "< 100 ms",
            ms(f99),
            f"p50 {ms(f50)}",
            "-",
            verdict(f99 < TARGET_S),
        ),
        Figure(
            "local: operator wake (POST wake?wait=true) p50 / p99",
            "-",
            f"{ms(o50)} / {ms(o99)}",
            f"agent started directly {ms(b50)} / {ms(b99)}",
            f"{ratio(o50, b50)} / {ratio(o99, b99)}",
            "info",
        ),
    ]
    return rows


# -- Kubernetes runtime against the fake API server -------------------------------------------
async def k8s_section(telegram: FakeTelegram, rounds: int, fsync: str) -> list[Figure]:
    from daemon.adapters.state_dir import DirStateStore
    from daemon.kube import names
    from daemon.kube.warm_pool import claimable
    from tests.k8s_runtime.process_backend import ProcessPodBackend
    from tests.k8s_runtime.support import NS
    from tests.support.fake_k8s import PODS

    cold: list[float] = []
    warm: list[float] = []
    create_phase: list[float] = []
    claim_phase: list[float] = []
    with (
        scratch_dir("otm-bench-wake-k8s-") as root,
        BenchRedis(root / "redis", fsync=fsync) as redis,
    ):
        store = DirStateStore(root / "data" / "state")
        backend = ProcessPodBackend(root / "pods", state_store=store)
        try:
            async with running_pod_cluster(
                root,
                backend,
                namespaces=("default", NS, names.DAEMON_NAMESPACE),
                bookmark_interval=0.5,
            ) as cluster:
                daemon = Daemon(
                    root / "data",
                    redis.url,
                    telegram,
                    **kubernetes_daemon_env(cluster),
                )
                try:
                    await daemon.start()

                    def warm_ready() -> int:
                        return sum(claimable(p) for p in cluster.server.store.snapshot(PODS, NS))

                    async def pool_full() -> bool:
                        return warm_ready() >= 1

                    async def wake_rounds(
                        prefix: str,
                        bot_id: int,
                        phase: str,
                        totals: list[float],
                        parts: list[float],
                    ) -> None:
                        """Round 0 warms caches and is not counted."""
                        for n in range(rounds + 1):
                            if prefix == "kw":
                                await eventually(pool_full, 60, "a warm pod")
                            tenant_id = f"{prefix}{n}"
                            await daemon.create_tenant(tenant_id, f"{bot_id + n}:k")
                            elapsed, phases = await operator_wake(daemon, tenant_id)
                            await sleep_tenant(daemon, tenant_id)
                            if n:
                                totals.append(elapsed)
                                parts.append(phases.get(phase, float("nan")))

                    await wake_rounds("kc", 7500, "pod_create_to_ready", cold, create_phase)
                    status, body = await daemon.api(
                        "PATCH", "/v1/config", json={"warm_pool_target": 1}
                    )
                    if status != 200:
                        raise RuntimeError(f"warm pool target: {status} {body}")
                    await wake_rounds("kw", 7700, "pod_claim_to_ready", warm, claim_phase)
                    await daemon.api("PATCH", "/v1/config", json={"warm_pool_target": 0})
                finally:
                    await daemon.stop()
        finally:
            await store.close()
    c50, c99 = dist(cold)
    w50, w99 = dist(warm)
    cp50, _ = dist(create_phase)
    wp50, _ = dist(claim_phase)
    return [
        Figure(
            "k8s (fake API): cold wake, pod created, p50 / p99",
            "-",
            f"{ms(c50)} / {ms(c99)}",
            f"create→ready p50 {ms(cp50)}",
            "1.00x",
            "info",
        ),
        Figure(
            "k8s (fake API): warm wake, pod claimed, p50 / p99",
            "-",
            f"{ms(w50)} / {ms(w99)}",
            f"claim→ready p50 {ms(wp50)}",
            f"warm/cold {ratio(w50, c50)} / {ratio(w99, c99)}",
            "info",
        ),
    ]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wake", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    parser.add_argument("--no-k8s", action="store_true", help="skip the Kubernetes section")
    parser.add_argument("--rounds", type=int, default=0, help="wakes per kind (default 20)")
    parser.add_argument("--fsync", choices=("always", "everysec", "no"), default="everysec")
    args = parser.parse_args(argv)
    rounds = args.rounds or (4 if args.quick else 20)
    k8s_rounds = max(2, rounds // 3)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)  # shared machine: keep other load's noise down
    print(f"{rounds} wakes per kind (local), {k8s_rounds} per kind (k8s); Redis fsync {args.fsync}")
    figures: list[Figure] = []
    async with asyncio.timeout(175), FakeTelegram(host="127.0.0.1", port=0) as telegram:
        figures += await local_section(telegram, rounds, args.fsync)
        if not args.no_k8s:
            if shutil.which("node") is None:
                print("node is not installed: no Kubernetes section (warm pods boot with node)")
            else:
                figures += await k8s_section(telegram, k8s_rounds, args.fsync)
    print_report("wake (stand-in agent, OTM_AGENT_BOOT_DELAY_S=0)", figures)
    print(json.dumps({"missed": [f.name for f in figures if f.verdict == "MISS"]}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
