"""Wake with a real OpenClaw gateway: message to a sleeping tenant → first reply, cold vs warm.

Everything real except Telegram and the model: the pinned gateway from ``.tools/openclaw``
as the local runtime's agent command, the stub LLM (``otm.devtools.stub_llm``), the fake Bot
API, through a real ``python -m daemon``. Interleaved rounds, each with:

* **cold** (the same-run baseline): ``warm_pool_target`` 0; a message to a sleeping tenant
  with history; its gateway boots on the restored state;
* **warm**: ``warm_pool_target`` 1, a gateway pre-booted (not timed); the same kind of
  message to a sleeping tenant with history is bound to it (restore + config rewrite);
* **warm, no history**: the same for a tenant that has never run.

Each sample: message POSTed to the router → first reply at the fake Bot API, then a second
message → its reply (the agent already running). Per-phase times come from the daemon's
``otm_agent_start_phase_seconds`` (claim, restore, config_write, channel_up; the ``_sum``
delta across one wake) and ``otm_wake_phase_seconds``; ``first_reply`` is the rest (ready →
reply). The load average is printed with every sample: the machine is shared.

Sections are functions returning ``Figure`` rows plus the headline (``SECTIONS``): a
Kubernetes section can be added beside ``local``.

Run: ``.venv/bin/python -m bench.openclaw_wake`` (``--rounds N``, ``--quick`` = 1 round).
Last line: ``openclaw_wake: warm_p50=…s cold_p50=…s ratio=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import shlex
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.common import Figure, machine_load, print_table, verdict
from bench.redis_server import BenchRedis
from bench.wake import scratch
from daemon.metrics import AGENT_START_PHASES, PHASE_FIRST_REPLY
from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from otm.devtools.stub_llm import StubLLM
from tests.e2e.harness import Daemon
from tests.support.openclaw import NODE_BIN_DIR, OPENCLAW_ENTRY, openclaw_installed
from tests.support.polling import eventually
from tests.support.servers import telegram_and_llm

BOOT_TIMEOUT_S = 240.0
REPLY_TIMEOUT_S = 120.0
CHAT = 4242
GOALS = {
    "warm": 6.0,  # warm, with history: first reply p50
    "warm_fresh": 3.0,  # warm, no history
    "cold": 20.0,
    "second": 2.0,
}
KINDS = ("cold", "warm", "warm_fresh")
LABELS = {
    "cold": "cold (history)",
    "warm": "warm (history)",
    "warm_fresh": "warm (no history)",
}


@dataclass
class Sample:
    kind: str
    first_reply_s: float
    second_reply_s: float
    phases: dict[str, float]
    notice: bool
    load: str


@dataclass
class Section:
    figures: list[Figure] = field(default_factory=list)
    warm_p50: float = float("nan")
    cold_p50: float = float("nan")


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load1() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


# -- the daemon's metrics --------------------------------------------------------------------


async def phase_sums(daemon: Daemon) -> dict[tuple[str, str], float]:
    """(metric, phase/path label) → _sum, for the two wake histograms."""
    status, text = await daemon.api("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("otm_wake_phase_seconds", "otm_agent_start_phase_seconds"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                label = sample.labels.get("phase", "")
                if "path" in sample.labels:
                    label = f"{label}/{sample.labels['path']}"
                out[(family.name, label)] = sample.value
    return out


def phase_deltas(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[str, float]:
    return {
        label: value - before.get((metric, label), 0.0)
        for (metric, label), value in after.items()
        if value - before.get((metric, label), 0.0) > 0
    }


# -- the local runtime --------------------------------------------------------------------------


class LocalBench:
    def __init__(self, daemon: Daemon, telegram: FakeTelegram) -> None:
        self.daemon = daemon
        self.telegram = telegram
        self.secrets: dict[str, str] = {}
        self.update_id = 1000

    def _echoes(self, token: str) -> list[str]:
        return [html.unescape(m.text) for m in self.telegram.sent(token, CHAT) if "echo:" in m.text]

    def _notices(self, token: str) -> int:
        return sum(1 for m in self.telegram.sent(token, CHAT) if m.text == STARTING_NOTICE)

    async def tenant(self, tenant_id: str) -> str:
        token = f"{7000 + len(self.secrets)}:bench-{tenant_id}"
        self.secrets[tenant_id] = await self.daemon.create_tenant(tenant_id, token)
        return token

    async def say(self, tenant_id: str, token: str, text: str) -> float:
        """POST one message to the router; seconds until the agent's reply to it arrived."""
        have = len(self._echoes(token))
        self.update_id += 1
        posted = time.monotonic()
        await self.daemon.send_text(tenant_id, self.secrets[tenant_id], self.update_id, CHAT, text)
        if not await self.telegram.state.changes.wait_until(
            lambda: len(self._echoes(token)) > have, REPLY_TIMEOUT_S
        ):
            raise RuntimeError(f"no reply from {tenant_id}\n{self.daemon.log_tail(40)}")
        return time.monotonic() - posted

    async def sleep(self, tenant_id: str) -> None:
        status, body = await self.daemon.api("POST", f"/v1/tenants/{tenant_id}/sleep")
        if status != 200:
            raise RuntimeError(f"sleep of {tenant_id}: {status} {body}")

    async def pool(self, target: int) -> None:
        """Set the warm pool target and wait until it is met with nothing booting."""
        status, body = await self.daemon.api(
            "PATCH", "/v1/config", json={"warm_pool_target": target}
        )
        if status != 200:
            raise RuntimeError(f"config: {status} {body}")

        async def met() -> bool:
            _, status_body = await self.daemon.api("GET", "/v1/status")
            pool = status_body["warm_pool"]
            return bool(pool["ready"] == target and pool["booting"] == 0)

        await eventually(met, BOOT_TIMEOUT_S, f"warm pool at {target}")

    async def sample(self, kind: str, tenant_id: str, token: str) -> Sample:
        before = await phase_sums(self.daemon)
        notices = self._notices(token)
        load = load1()
        first = await self.say(tenant_id, token, f"{kind} first message")
        after = await phase_sums(self.daemon)
        second = await self.say(tenant_id, token, f"{kind} second message")
        phases = phase_deltas(before, after)
        to_ready = sum(phases.get(k, 0.0) for k in ("lock", "registry", "runtime_start", "ready"))
        phases[PHASE_FIRST_REPLY] = first - to_ready
        return Sample(kind, first, second, phases, self._notices(token) > notices, load)


@asynccontextmanager
async def bench_daemon(
    data_dir: Path, redis: BenchRedis, telegram: FakeTelegram, llm: StubLLM, **env: str
) -> AsyncIterator[Daemon]:
    """A daemon (``env`` added to its settings) on the bench Redis whose agents' model is the
    stub LLM, with the real gateway's boot timeout; stopped on exit (its agents' final
    syncs may take a while)."""
    await asyncio.to_thread(data_dir.mkdir)
    daemon = Daemon(
        data_dir,
        redis.url,
        telegram,
        OTM_AGENT_MODEL_BASE_URL=llm.base_url,
        OTM_AGENT_MODEL_ID="stub-model",
        OTM_WAKE_TIMEOUT_S=str(BOOT_TIMEOUT_S),
        OTM_AGENT_STOP_GRACE_S="60",
        **env,
    )
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop(timeout=120)


async def run_local(rounds: int, args: argparse.Namespace) -> Section:
    with (
        scratch("otm-bench-openclaw-wake-") as root,
        BenchRedis(root / "redis", fsync="everysec") as redis,
    ):
        async with (
            telegram_and_llm() as (telegram, llm),
            bench_daemon(
                root / "data",
                redis,
                telegram,
                llm,
                OTM_AGENT_COMMAND=shlex.join(
                    [str(NODE_BIN_DIR / "node"), str(OPENCLAW_ENTRY), "gateway"]
                ),
                OTM_WARM_AGENT_TELEGRAM=args.warm_telegram,
                OTM_WARM_POOL_WARMUP=args.warm_up,
                # The bench waits for the pool itself before each warm sample.
                OTM_WARM_POOL_REFILL_PAUSE_S="0",
            ) as daemon,
        ):
            return await _local_rounds(LocalBench(daemon, telegram), rounds)


async def _local_rounds(bench: LocalBench, rounds: int) -> Section:
    samples: list[Sample] = []
    # Tenants with history: one cold turn each before the rounds (not measured).
    history = {kind: f"hist-{kind}" for kind in ("cold", "warm")}
    tokens = {}
    for tenant_id in history.values():
        tokens[tenant_id] = await bench.tenant(tenant_id)
        await bench.say(tenant_id, tokens[tenant_id], "history")
        await bench.sleep(tenant_id)
    for n in range(rounds):
        for kind in KINDS:
            await bench.pool(0 if kind == "cold" else 1)
            if kind == "warm_fresh":
                tenant_id = f"fresh-{n}"
                tokens[tenant_id] = await bench.tenant(tenant_id)
            else:
                tenant_id = history[kind]
            sample = await bench.sample(kind, tenant_id, tokens[tenant_id])
            samples.append(sample)
            await bench.sleep(tenant_id)
            print(
                f"round {n + 1} {LABELS[kind]:18} first reply {sample.first_reply_s:6.2f}s"
                f"  second {sample.second_reply_s:5.2f}s  notice {'yes' if sample.notice else 'no'}"
                f"  load {sample.load}  phases "
                + " ".join(f"{k}={v:.2f}" for k, v in sorted(sample.phases.items())),
                flush=True,
            )
    await bench.pool(0)
    return summarise(samples)


def summarise(samples: list[Sample]) -> Section:
    section = Section()
    by_kind = {kind: [s for s in samples if s.kind == kind] for kind in KINDS}
    cold = [s.first_reply_s for s in by_kind["cold"]]
    cold_p50 = p(cold, 0.5)
    rows = section.figures
    for kind in KINDS:
        firsts = [s.first_reply_s for s in by_kind[kind]]
        p50, p95 = p(firsts, 0.5), p(firsts, 0.95)
        rows.append(
            Figure(
                f"message → first reply, {LABELS[kind]} (p50 / p95, n={len(firsts)})",
                f"< {GOALS[kind]:.0f} s p50",
                f"{p50:.2f} s / {p95:.2f} s",
                f"cold {cold_p50:.2f} s",
                f"{p50 / cold_p50:.2f}x" if cold_p50 > 0 else "-",
                verdict(p50 < GOALS[kind]),
            )
        )
    seconds = [s.second_reply_s for s in samples]
    rows.append(
        Figure(
            f"second reply, agent running (p50 / p95, n={len(seconds)})",
            "< 2 s p50",
            f"{p(seconds, 0.5):.2f} s / {p(seconds, 0.95):.2f} s",
            "-",
            "-",
            verdict(p(seconds, 0.5) < GOALS["second"]),
        )
    )
    for kind in ("warm", "warm_fresh"):
        noticed = sum(1 for s in by_kind[kind] if s.notice)
        rows.append(
            Figure(
                f"starting-up notice on {LABELS[kind]} wakes",
                "none when ready < 2 s",
                f"{noticed} of {len(by_kind[kind])}",
                f"cold: {sum(1 for s in by_kind['cold'] if s.notice)} of {len(cold)}",
                "-",
                "info",
            )
        )
    for kind in KINDS:
        path = "cold" if kind == "cold" else "warm"
        labels = [f"{phase}/{path}" for phase in AGENT_START_PHASES if phase != PHASE_FIRST_REPLY]
        labels += ["lock", "registry", "runtime_start", "ready", PHASE_FIRST_REPLY]
        parts = []
        for label in labels:
            values = [s.phases[label] for s in by_kind[kind] if label in s.phases]
            if values:
                parts.append(f"{label} {p(values, 0.5):.2f}/{p(values, 0.95):.2f}")
        rows.append(
            Figure(f"phases p50/p95 (s), {LABELS[kind]}", "-", "; ".join(parts), "-", "-", "info")
        )
    section.warm_p50 = p([s.first_reply_s for s in by_kind["warm"]], 0.5)
    section.cold_p50 = cold_p50
    return section


async def run_kubernetes(rounds: int, args: argparse.Namespace) -> Section:
    from bench.openclaw_wake_k8s import run_k8s  # imports this module

    return await run_k8s(rounds, args)


SECTIONS: dict[str, Callable[[int, argparse.Namespace], Awaitable[Section]]] = {
    "local": run_local,
    "kubernetes": run_kubernetes,
}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.openclaw_wake", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of cold/warm/warm-fresh")
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append")
    parser.add_argument(
        "--warm-telegram",
        choices=("disabled", "placeholder"),
        default="placeholder",
        help="how a warm gateway runs Telegram before its bind (setting warm_agent_telegram)",
    )
    parser.add_argument(
        "--warm-up",
        choices=("none", "turn"),
        default="none",
        help="a throw-away turn on each warm gateway before it counts as ready "
        "(setting warm_pool_warmup)",
    )
    args = parser.parse_args(argv)
    if not openclaw_installed():
        print("OpenClaw is not installed in .tools/openclaw: run scripts/install-openclaw.sh")
        return 2
    rounds = 1 if args.quick else args.rounds
    print(
        f"{rounds} round(s); warm Telegram {args.warm_telegram}; warm-up {args.warm_up}; "
        f"{machine_load()}",
        flush=True,
    )
    headline = Section()
    for name in args.section or ["local"]:
        section = await SECTIONS[name](rounds, args)
        print(f"machine after {name}: {machine_load()}")
        print_table(f"openclaw wake ({name} runtime, real gateway, stub LLM)", section.figures)
        if name == "local" or "local" not in (args.section or ["local"]):
            headline = section
    print(json.dumps({"load_after": machine_load()}))
    ratio = headline.warm_p50 / headline.cold_p50 if headline.cold_p50 > 0 else float("nan")
    print(
        f"openclaw_wake: warm_p50={headline.warm_p50:.2f}s cold_p50={headline.cold_p50:.2f}s "
        f"ratio={ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
