"""Fleet image rollouts: the rollout record and the pure decisions about it.

A rollout moves the tenants a selector picks to a new image in waves (``steps``, e.g.
5 %, 25 %, 100 %). Which tenants are in a wave is deterministic: tenants are ranked by a
hash of their id and a wave of fraction ``f`` takes the first ``ceil(f * n)`` of them, so
the waves only grow and the same tenants go first every time (at least one per wave).
Tenants are moved by their registry ``image`` only while they are not running (the
controller, daemon/lifecycle/rollout.py, never stops an agent: a running tenant moves at
its next sleep).

Each wave is gated on health, counted per side from the tenant events while the wave
runs: ``new`` are the tenants this rollout moved, ``old`` the others. The error rate of a
side is (failed wakes + lost agents + agent 5xx answers) / wake attempts. The gate fails
when the new side has at least ``min_failures`` errors and its rate exceeds the old
side's by more than ``max_error_rate_increase``; it passes once the wave has been up for
``pause_s`` and the new side has at least ``min_wakes`` successful wakes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_IMAGE_LEN = 255
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


class RolloutStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"


ACTIVE = frozenset({RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.ROLLING_BACK})
"""A rollout in these states still changes tenants; a new one cannot start."""

HEALTH_FIELDS = ("wakes_ok", "wakes_failed", "agents_lost", "agent_5xx")


@dataclass(frozen=True)
class Health:
    """What one side (new or old image) did during the current wave."""

    wakes_ok: int = 0
    wakes_failed: int = 0
    agents_lost: int = 0
    agent_5xx: int = 0

    @property
    def errors(self) -> int:
        return self.wakes_failed + self.agents_lost + self.agent_5xx

    @property
    def error_rate(self) -> float:
        # Capped: one wake can be followed by many 5xx answers.
        return min(1.0, self.errors / max(1, self.wakes_ok + self.wakes_failed))

    @classmethod
    def from_counts(cls, counts: dict[str, int]) -> Health:
        return cls(**{name: int(counts.get(name, 0)) for name in HEALTH_FIELDS})

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "error_rate": round(self.error_rate, 4)}


@dataclass(frozen=True)
class Gate:
    min_wakes: int = 1
    """Successful wakes on the new image a wave needs before the next one starts."""
    min_failures: int = 2
    """Errors on the new image below this never fail the gate (one flake is not a trend)."""
    max_error_rate_increase: float = 0.2
    """How much worse than the old image the new one may be before it is rolled back."""


@dataclass(frozen=True)
class Rollout:
    rollout_id: str
    image: str
    steps: tuple[float, ...]
    selector: str = ""
    pause_s: float = 0.0
    gate: Gate = field(default_factory=Gate)
    status: RolloutStatus = RolloutStatus.RUNNING
    wave: int = 0
    """Index into ``steps`` of the wave being rolled out."""
    wave_started_at: float = 0.0
    """Unix time the current wave began (its health counts start then)."""
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 1
    """Incremented on every write; writes are compare-and-set on it."""

    @property
    def fraction(self) -> float:
        """Share of the selected tenants this rollout wants on the new image now."""
        if self.status in (RolloutStatus.ROLLING_BACK, RolloutStatus.ROLLED_BACK):
            return 0.0
        return self.steps[self.wave]

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        out["steps"] = list(self.steps)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rollout:
        kwargs = dict(data)
        kwargs["status"] = RolloutStatus(kwargs["status"])
        kwargs["steps"] = tuple(float(s) for s in kwargs["steps"])
        kwargs["gate"] = Gate(**kwargs.get("gate") or {})
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names})


def validate_image(image: object) -> str:
    if (
        not isinstance(image, str)
        or not image
        or len(image) > MAX_IMAGE_LEN
        or not _IMAGE_RE.fullmatch(image)
    ):
        raise ValueError(f"invalid image {image!r}: expected a name like repo/openclaw:2026.9.6")
    return image


def parse_steps(raw: str | Sequence[object]) -> tuple[float, ...]:
    """``"5%,25%,100%"`` (or a list of percentages / fractions) → ``(0.05, 0.25, 1.0)``:
    strictly increasing, each in (0, 1], the last 100 %."""
    parts: Iterable[object] = raw.split(",") if isinstance(raw, str) else raw
    steps: list[float] = []
    for part in parts:
        text = str(part).strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"steps: {text!r} is not a percentage like 25%") from None
        if isinstance(part, (int, float)) and not isinstance(part, bool) and part > 1:
            value = float(part) / 100
        steps.append(value)
    if not steps:
        raise ValueError("steps: at least one step (e.g. 100%)")
    if any(not 0 < s <= 1 for s in steps):
        raise ValueError("steps: each step between 0% (exclusive) and 100%")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError("steps: each step larger than the one before")
    if steps[-1] != 1.0:
        raise ValueError("steps: the last step must be 100%")
    return tuple(steps)


def tenant_rank_key(tenant_id: str) -> str:
    """Deterministic, id-independent-looking order of tenants (the wave order)."""
    return hashlib.sha256(f"otm-rollout:{tenant_id}".encode()).hexdigest()


def wave_members(tenant_ids: Iterable[str], fraction: float) -> list[str]:
    """The tenants a wave of ``fraction`` covers: the first ``ceil(fraction * n)`` by hash
    rank (at least one when there is a tenant and ``fraction`` > 0)."""
    ranked = sorted(set(tenant_ids), key=tenant_rank_key)
    if fraction <= 0 or not ranked:
        return []
    count = min(len(ranked), max(1, math.ceil(fraction * len(ranked) - 1e-9)))
    return ranked[:count]


class GateVerdict(StrEnum):
    WAIT = "wait"
    PASS = "pass"
    FAIL = "fail"


def judge(gate: Gate, new: Health, old: Health, waited_s: float, pause_s: float) -> GateVerdict:
    """The wave's gate: fail on a worse error rate, pass after the pause with enough wakes."""
    if new.errors >= gate.min_failures and (
        new.error_rate > old.error_rate + gate.max_error_rate_increase
    ):
        return GateVerdict.FAIL
    if waited_s >= pause_s and new.wakes_ok >= gate.min_wakes:
        return GateVerdict.PASS
    return GateVerdict.WAIT


class Step(StrEnum):
    NOTHING = "nothing"
    ADVANCE = "advance"
    COMPLETE = "complete"
    ROLL_BACK = "roll_back"
    ROLLED_BACK = "rolled_back"


def next_step(
    rollout: Rollout,
    *,
    new: Health,
    old: Health,
    now: float,
    pending: int,
    to_restore: int,
) -> tuple[Step, str]:
    """What the controller does next, and why. ``pending``: selected tenants of the current
    wave not moved yet; ``to_restore``: moved tenants not yet back on their old image."""
    if rollout.status == RolloutStatus.ROLLING_BACK:
        return (
            (Step.ROLLED_BACK, "every moved tenant is back")
            if to_restore == 0
            else (
                Step.NOTHING,
                f"{to_restore} tenant(s) to move back (running ones at their next sleep)",
            )
        )
    if rollout.status not in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
        return Step.NOTHING, ""
    verdict = judge(rollout.gate, new, old, now - rollout.wave_started_at, rollout.pause_s)
    if verdict is GateVerdict.FAIL:
        return Step.ROLL_BACK, (
            f"gate failed in wave {rollout.wave + 1}: error rate {new.error_rate:.0%} on "
            f"{rollout.image} ({new.errors} errors) vs {old.error_rate:.0%} on the old image"
        )
    if rollout.status == RolloutStatus.PAUSED:
        return Step.NOTHING, ""
    if pending:
        return Step.NOTHING, f"{pending} tenant(s) of this wave still running the old image"
    if verdict is GateVerdict.WAIT:
        missing = rollout.gate.min_wakes - new.wakes_ok
        if missing > 0:
            return Step.NOTHING, f"waiting for {missing} more healthy wake(s) on the new image"
        return Step.NOTHING, f"wave {rollout.wave + 1} runs for its pause first"
    if rollout.wave + 1 < len(rollout.steps):
        return Step.ADVANCE, f"wave {rollout.wave + 1} healthy"
    return Step.COMPLETE, "every selected tenant runs the new image"


def pool_mix(rollout: Rollout | None, default_image: str) -> dict[str, float]:
    """Share of the warm pool per image: the default image alone; both images in the
    wave's proportion while a rollout runs; the new image alone once a rollout of all
    tenants (no selector) completed."""
    if rollout is None or rollout.image == default_image:
        return {default_image: 1.0}
    if rollout.status in (RolloutStatus.ROLLING_BACK, RolloutStatus.ROLLED_BACK):
        return {default_image: 1.0}
    share = 1.0 if rollout.status == RolloutStatus.COMPLETED else rollout.fraction
    if rollout.selector:
        # A selector picks a subset of unknown size: its share of the whole fleet is not
        # known, so half of the pool serves it at most (completed too: the others stay).
        share = min(share, 0.5)
    if share >= 1.0:
        return {rollout.image: 1.0}
    return {default_image: 1.0 - share, rollout.image: share}


def split_target(target: int, mix: dict[str, float]) -> dict[str, int]:
    """Whole pods per image summing to ``target`` (largest remainders; an image with a
    share gets at least one pod when the target allows)."""
    if target <= 0 or not mix:
        return dict.fromkeys(mix, 0)
    raw = {image: share * target for image, share in mix.items()}
    counts = {image: math.floor(value) for image, value in raw.items()}
    for image in sorted(raw, key=lambda i: raw[i] - counts[i], reverse=True):
        if sum(counts.values()) >= target:
            break
        counts[image] += 1
    for image, share in mix.items():
        if share > 0 and counts[image] == 0:
            donor = max(counts, key=lambda i: counts[i])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[image] = 1
    return counts


def parse_image_commands(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Setting ``agent_image_commands``: ``<image>=<command line>`` → {image: words}."""
    import shlex

    out: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        image, sep, command = entry.partition("=")
        image = image.strip()
        if not sep or not command.strip():
            raise ValueError(f"expected <image>=<command>, got {entry!r}")
        validate_image(image)
        out[image] = tuple(shlex.split(command))
    return out
