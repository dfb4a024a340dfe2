"""Shared helpers of the benchmarks: percentiles, CPU pinning, /proc readings, report tables."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of unsorted values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


_START_CPUS = sorted(os.sched_getaffinity(0))
"""Taken at import: a benchmark pins itself to the load generator's core(s) later, and
must still place the daemon on the core it keeps free."""


def cpus() -> list[int]:
    """The CPUs this process could use when the benchmark started."""
    return list(_START_CPUS)


def pin(pid: int, cpu_set: set[int]) -> None:
    """Pin every thread of a process (sched_setaffinity on a pid moves only one thread)."""
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.exists() else [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(tid, cpu_set)


def with_descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a sandboxed agent runs as a child of bwrap:
    its CPU is not the wrapper's, and pinning the wrapper does not move it)."""
    out, pending = [], [pid]
    while pending:
        current = pending.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pending += [int(child) for child in task.read_text().split()]
    return out


@contextlib.contextmanager
def spawning_on(cpu_set: set[int] | None) -> Iterator[None]:
    """Children started inside inherit ``cpu_set`` (so every thread they ever start is
    pinned); the caller's own affinity is restored afterwards."""
    if cpu_set is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_set)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc/{pid}/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class CpuMeter:
    """CPU seconds a set of processes used between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._wall = 0.0
        self.used: dict[str, float] = {}
        self.wall_s = 0.0

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wall = time.monotonic()

    def stop(self) -> None:
        self.wall_s = time.monotonic() - self._wall
        self.used = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}

    def utilisation(self) -> dict[str, float]:
        """Fraction of one core each process used over the wall time."""
        return {name: used / self.wall_s for name, used in self.used.items()}


@dataclass(frozen=True)
class Metered:
    """One metered load run: how many updates, their rates, the processes' CPU."""

    updates: int
    accepted_per_s: float
    """Updates over the time the load took to send them (every one answered)."""
    delivered_per_s: float
    """Updates over the time until the last of them reached its agent."""
    meter: CpuMeter


class Sent(Protocol):
    """What a load run returns (hot_path.Block): the ids of the updates it got accepted."""

    @property
    def update_ids(self) -> list[int]: ...


async def metered_run(
    pids: dict[str, int],
    send: Awaitable[Sent],
    delivered: Callable[[list[int]], Awaitable[float]],
) -> Metered:
    """CPU and rates of one load run: ``send`` sends (its update ids were accepted),
    ``delivered`` waits for their receipts and returns the monotonic time of the last."""
    meter = CpuMeter(pids)
    meter.start()
    started = time.monotonic()
    update_ids = (await send).update_ids
    accepted_at = time.monotonic()
    last = await delivered(update_ids)
    meter.stop()
    n = len(update_ids)
    return Metered(n, n / (accepted_at - started), n / (last - started), meter)


@dataclass(frozen=True)
class Figure:
    """One row of a benchmark's report."""

    name: str
    target: str
    measured: str
    baseline: str
    ratio: str
    verdict: str  # PASS / MISS / info


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "info"
    return "PASS" if ok else "MISS"


def ratio(value: float, baseline: float) -> str:
    if baseline <= 0 or value != value or baseline != baseline:
        return "-"
    return f"{value / baseline:.2f}x"


def print_table(title: str, rows: Sequence[Figure]) -> None:
    headers = ("figure", "target", "measured", "baseline (same run)", "ratio", "result")
    table = [headers] + [
        (r.name, r.target, r.measured, r.baseline, r.ratio, r.verdict) for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    print(f"\n== {title}")
    for n, row in enumerate(table):
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def markdown_table(rows: Sequence[Figure]) -> str:
    lines = [
        "| figure | target | measured | baseline (same run) | ratio | result |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {r.target} | {r.measured} | {r.baseline} | {r.ratio} | {r.verdict} |"
        for r in rows
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for one run, removed afterwards unless OTM_BENCH_KEEP is set."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if os.environ.get("OTM_BENCH_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def print_report(title: str, rows: Sequence[Figure]) -> None:
    """The machine's load (how shared it was), then the table."""
    print(f"machine: {machine_load()} (other jobs share it: see README)")
    print_table(title, rows)


def machine_load() -> str:
    """The 1/5/15-minute load averages and the CPU count: how shared the machine was."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"load average {one} / {five} / {fifteen} on {os.cpu_count()} CPUs"
