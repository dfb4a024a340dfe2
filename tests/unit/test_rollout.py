"""The pure rollout decisions (daemon/rollout.py): waves, the health gate, the warm pool's
image mix, the steps and image-command parsers."""

from __future__ import annotations

import pytest

from daemon.rollout import (
    Gate,
    GateVerdict,
    Health,
    Rollout,
    RolloutStatus,
    Step,
    judge,
    next_step,
    parse_image_commands,
    parse_steps,
    pool_mix,
    split_target,
    wave_members,
)

TENANTS = [f"t{i}" for i in range(40)]


def rollout(**overrides: object) -> Rollout:
    fields: dict[str, object] = {
        "rollout_id": "r-1",
        "image": "img:v2",
        "steps": (0.05, 0.25, 1.0),
        "pause_s": 60.0,
        "wave_started_at": 1000.0,
    }
    fields.update(overrides)
    return Rollout(**fields)  # type: ignore[arg-type]


def test_waves_grow_monotonically_and_are_deterministic() -> None:
    first = wave_members(TENANTS, 0.05)
    second = wave_members(reversed(TENANTS), 0.25)
    everyone = wave_members(TENANTS, 1.0)
    assert len(first) == 2 and len(second) == 10 and sorted(everyone) == sorted(TENANTS)
    assert set(first) <= set(second) <= set(everyone)
    assert wave_members(list(reversed(TENANTS)), 0.05) == first  # order of input is irrelevant
    # Hash order, not name order: the first wave is not simply the first names.
    assert first != sorted(TENANTS)[:2]


def test_a_wave_takes_at_least_one_tenant_and_none_of_nothing() -> None:
    assert len(wave_members(["a", "b", "c"], 0.05)) == 1
    assert wave_members([], 0.5) == []
    assert wave_members(["a"], 0.0) == []


def test_gate_fails_when_the_new_image_errors_more_than_the_old() -> None:
    gate = Gate(min_wakes=1, min_failures=2, max_error_rate_increase=0.2)
    bad = Health(wakes_ok=1, wakes_failed=3)
    assert judge(gate, bad, Health(wakes_ok=10), waited_s=0, pause_s=60) is GateVerdict.FAIL
    # As bad as the old image: not the new image's fault.
    old_as_bad = Health(wakes_ok=1, wakes_failed=3)
    assert judge(gate, bad, old_as_bad, waited_s=0, pause_s=60) is GateVerdict.WAIT
    # One error is not a trend.
    one = Health(wakes_ok=0, wakes_failed=1)
    assert judge(gate, one, Health(), waited_s=120, pause_s=60) is GateVerdict.WAIT
    # Agent 5xx and lost agents count as errors too.
    crashes = Health(wakes_ok=2, agents_lost=1, agent_5xx=1)
    assert judge(gate, crashes, Health(wakes_ok=5), waited_s=0, pause_s=0) is GateVerdict.FAIL


def test_gate_passes_after_the_pause_with_enough_healthy_wakes() -> None:
    gate = Gate(min_wakes=2)
    healthy = Health(wakes_ok=2)
    assert judge(gate, healthy, Health(), waited_s=59, pause_s=60) is GateVerdict.WAIT
    assert judge(gate, healthy, Health(), waited_s=60, pause_s=60) is GateVerdict.PASS
    assert judge(gate, Health(wakes_ok=1), Health(), waited_s=600, pause_s=60) is GateVerdict.WAIT


def test_next_step_advances_completes_and_rolls_back() -> None:
    healthy, none = Health(wakes_ok=3), Health()
    r = rollout()
    assert next_step(r, new=healthy, old=none, now=1030, pending=0, to_restore=0)[0] is Step.NOTHING
    assert next_step(r, new=healthy, old=none, now=1060, pending=0, to_restore=0)[0] is Step.ADVANCE
    # Tenants of the wave still running the old image hold the wave.
    step, why = next_step(r, new=healthy, old=none, now=1060, pending=2, to_restore=0)
    assert step is Step.NOTHING and "2 tenant(s)" in why
    last = rollout(wave=2)
    assert next_step(last, new=healthy, old=none, now=1060, pending=0, to_restore=0)[0] is (
        Step.COMPLETE
    )
    failing = Health(wakes_failed=3)
    step, why = next_step(r, new=failing, old=none, now=1001, pending=0, to_restore=0)
    assert step is Step.ROLL_BACK and "gate failed in wave 1" in why


def test_paused_never_advances_but_still_rolls_back() -> None:
    paused = rollout(status=RolloutStatus.PAUSED)
    healthy = Health(wakes_ok=3)
    assert next_step(paused, new=healthy, old=Health(), now=9999, pending=0, to_restore=0)[0] is (
        Step.NOTHING
    )
    failing = Health(wakes_failed=5)
    assert next_step(paused, new=failing, old=Health(), now=9999, pending=0, to_restore=0)[0] is (
        Step.ROLL_BACK
    )


def test_rolling_back_ends_when_every_tenant_is_back() -> None:
    back = rollout(status=RolloutStatus.ROLLING_BACK)
    assert next_step(back, new=Health(), old=Health(), now=0, pending=0, to_restore=1)[0] is (
        Step.NOTHING
    )
    assert next_step(back, new=Health(), old=Health(), now=0, pending=0, to_restore=0)[0] is (
        Step.ROLLED_BACK
    )
    for done in (RolloutStatus.COMPLETED, RolloutStatus.ROLLED_BACK):
        assert (
            next_step(
                rollout(status=done),
                new=Health(wakes_failed=9),
                old=Health(),
                now=0,
                pending=0,
                to_restore=0,
            )[0]
            is Step.NOTHING
        )


def test_pool_mix_follows_the_wave() -> None:
    assert pool_mix(None, "img:v1") == {"img:v1": 1.0}
    assert pool_mix(rollout(wave=1), "img:v1") == {"img:v1": 0.75, "img:v2": 0.25}
    assert pool_mix(rollout(status=RolloutStatus.COMPLETED, wave=2), "img:v1") == {"img:v2": 1.0}
    assert pool_mix(rollout(status=RolloutStatus.ROLLING_BACK), "img:v1") == {"img:v1": 1.0}
    half = {"img:v1": 0.5, "img:v2": 0.5}
    assert pool_mix(rollout(wave=2, selector="tier=beta"), "img:v1") == half
    done_subset = rollout(status=RolloutStatus.COMPLETED, wave=2, selector="tier=beta")
    assert pool_mix(done_subset, "img:v1") == half  # the others still run the old image
    assert pool_mix(rollout(image="img:v1"), "img:v1") == {"img:v1": 1.0}


def test_split_target_sums_to_the_target_and_gives_each_image_a_pod() -> None:
    assert split_target(4, {"a": 0.75, "b": 0.25}) == {"a": 3, "b": 1}
    assert split_target(4, {"a": 0.95, "b": 0.05}) == {"a": 3, "b": 1}
    assert split_target(1, {"a": 0.95, "b": 0.05}) == {"a": 1, "b": 0}
    assert split_target(0, {"a": 1.0}) == {"a": 0}
    assert sum(split_target(7, {"a": 0.5, "b": 0.5}).values()) == 7


def test_parse_steps() -> None:
    assert parse_steps("5%,25%,100%") == (0.05, 0.25, 1.0)
    assert parse_steps([10, 100]) == (0.1, 1.0)
    assert parse_steps("0.5,1") == (0.5, 1.0)
    for bad in ("", "50%", "25%,5%,100%", "0%,100%", "abc", "150%"):
        with pytest.raises(ValueError):
            parse_steps(bad)


def test_rollout_round_trips_through_json() -> None:
    r = rollout(status=RolloutStatus.PAUSED, gate=Gate(min_wakes=3), selector="a=b")
    assert Rollout.from_json(r.to_json()) == r


def test_parse_image_commands() -> None:
    assert parse_image_commands(["repo/oc:v2=node 'a b.mjs' gateway"]) == {
        "repo/oc:v2": ("node", "a b.mjs", "gateway")
    }
    for bad in ("no-command", "=cmd", "bad image=cmd", "img="):
        with pytest.raises(ValueError):
            parse_image_commands([bad])
