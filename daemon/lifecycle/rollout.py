"""Fleet image rollouts: the durable record in Redis and the leader-only controller.

* ``RolloutStore``: the current rollout (one JSON document, compare-and-set on its
  ``version`` so the admin API of any replica and the leader never overwrite each
  other), the tenants it moved with the image each had before (a hash: rollback puts
  that back), and the wave's health counters per side (daemon/rollout.py).
* ``Rollouts``: the operator's verbs (start, pause, resume, roll back), used by the
  admin API on any replica.
* ``RolloutController.run``: leader only. Counts the tenant events of every replica
  into the health counters, moves the current wave's tenants that are not running
  (a running tenant keeps its image until it sleeps: no turn is ever cut), applies the
  pure ``next_step`` (advance, complete, roll back) and tells the warm pool which
  images to hold (``pool_mix``). It re-evaluates on tenant events and every ``tick_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from daemon.label_selector import matches_labels, parse_label_selector
from daemon.model import ConditionFailed, OtmError, Tenant, TenantNotFound, TenantStatus
from daemon.ports import Registry
from daemon.redis_keys import ROLLOUT_KEY, rollout_health_key, rollout_moved_key
from daemon.rollout import (
    ACTIVE,
    HEALTH_FIELDS,
    Gate,
    Health,
    Rollout,
    RolloutStatus,
    Step,
    next_step,
    parse_steps,
    pool_mix,
    validate_image,
    wave_members,
)

log = logging.getLogger(__name__)

BUSY = frozenset({TenantStatus.RUNNING, TenantStatus.PROVISIONING, TenantStatus.STOPPING})
"""A tenant in these states keeps its image: its agent runs (or is being started/stopped)."""
KEEP_FINISHED_S = 30 * 86400
"""A finished rollout's tenant map and counters are kept this long (status, audits)."""
MAX_QUEUED_EVENTS = 10_000
CAS_ATTEMPTS = 3
"""An operator's change retried this often when the leader wrote the record meanwhile."""

_CAS = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = cjson.decode(current)['version'] end
if tostring(version) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RolloutConflict(OtmError):
    """The operation does not fit the rollout's state (409)."""


class NoRollout(OtmError):
    """There is no rollout (404)."""


class RolloutStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def get(self) -> Rollout | None:
        raw = await self.redis.get(ROLLOUT_KEY)
        return Rollout.from_json(json.loads(raw)) if raw else None

    async def put(self, rollout: Rollout, *, expect_version: int) -> Rollout:
        """Write ``rollout`` (version + 1) if the stored one still has ``expect_version``
        (0: none stored); RolloutConflict otherwise."""
        new = Rollout.from_json(
            {**rollout.to_json(), "version": expect_version + 1, "updated_at": time.time()}
        )
        body = json.dumps(new.to_json())
        if not await self.redis.eval(_CAS, 1, ROLLOUT_KEY, str(expect_version), body):
            raise RolloutConflict("the rollout changed meanwhile; try again")
        return new

    async def moved(self, rollout_id: str) -> dict[str, str]:
        """Tenant id → the image it had before this rollout moved it ("" = the default)."""
        raw = await self.redis.hgetall(rollout_moved_key(rollout_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def mark_moved(self, rollout_id: str, tenant_id: str, prior: str) -> None:
        await self.redis.hsetnx(rollout_moved_key(rollout_id), tenant_id, prior)

    async def unmark(self, rollout_id: str, tenant_id: str) -> None:
        await self.redis.hdel(rollout_moved_key(rollout_id), tenant_id)

    async def count(self, rollout: Rollout, side: str, field: str) -> None:
        await self.redis.hincrby(
            rollout_health_key(rollout.rollout_id, rollout.wave), f"{side}:{field}", 1
        )

    async def health(self, rollout: Rollout) -> tuple[Health, Health]:
        """(new image, old image) during the current wave."""
        raw = await self.redis.hgetall(rollout_health_key(rollout.rollout_id, rollout.wave))
        counts = {_text(k): int(v) for k, v in raw.items()}
        sides = []
        for side in ("new", "old"):
            sides.append(
                Health.from_counts({f: counts.get(f"{side}:{f}", 0) for f in HEALTH_FIELDS})
            )
        return sides[0], sides[1]

    async def expire_finished(self, rollout: Rollout) -> None:
        keys = [rollout_moved_key(rollout.rollout_id)] + [
            rollout_health_key(rollout.rollout_id, wave) for wave in range(len(rollout.steps))
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.expire(key, KEEP_FINISHED_S)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Rollouts:
    """The operator's verbs; every change is a compare-and-set on the stored record."""

    def __init__(self, store: RolloutStore, *, on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_change = on_change

    async def status(self) -> dict[str, Any] | None:
        rollout = await self.store.get()
        if rollout is None:
            return None
        new, old = await self.store.health(rollout)
        moved = await self.store.moved(rollout.rollout_id)
        return {
            **rollout.to_json(),
            "wave_number": rollout.wave + 1,
            "fraction": rollout.fraction,
            "moved": len(moved),
            "health": {"new": new.as_dict(), "old": old.as_dict()},
        }

    async def start(self, body: dict[str, Any]) -> Rollout:
        unknown = set(body) - {"image", "steps", "selector", "pause_s", "gate"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        image = validate_image(body.get("image"))
        steps = parse_steps(body.get("steps", "100%"))
        selector = body.get("selector") or ""
        if not isinstance(selector, str):
            raise ValueError("selector must be a string")
        if selector:
            parse_label_selector(selector)  # ValueError names the bad term
        pause_s = body.get("pause_s", 0)
        if not isinstance(pause_s, (int, float)) or isinstance(pause_s, bool) or pause_s < 0:
            raise ValueError("pause_s must be a number of seconds >= 0")
        gate = _gate(body.get("gate") or {})
        current = await self.store.get()
        if current is not None and current.status in ACTIVE:
            raise RolloutConflict(
                f"rollout {current.rollout_id} to {current.image} is {current.status.value}; "
                "roll it back or let it finish first"
            )
        now = time.time()
        rollout = Rollout(
            rollout_id=f"r-{int(now)}-{secrets.token_hex(3)}",
            image=image,
            steps=steps,
            selector=selector,
            pause_s=float(pause_s),
            gate=gate,
            wave_started_at=now,
            created_at=now,
        )
        stored = await self.store.put(
            rollout, expect_version=current.version if current is not None else 0
        )
        log.info("rollout %s to %s started (steps %s)", stored.rollout_id, image, steps)
        self._changed()
        return stored

    async def pause(self) -> Rollout:
        return await self._transition(
            {RolloutStatus.RUNNING}, RolloutStatus.PAUSED, "paused by an operator"
        )

    async def resume(self) -> Rollout:
        return await self._transition(
            {RolloutStatus.PAUSED}, RolloutStatus.RUNNING, "resumed by an operator"
        )

    async def rollback(self, reason: str = "rolled back by an operator") -> Rollout:
        return await self._transition(
            {RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.COMPLETED},
            RolloutStatus.ROLLING_BACK,
            reason,
        )

    async def _transition(
        self, allowed: set[RolloutStatus], to: RolloutStatus, reason: str
    ) -> Rollout:
        for attempt in range(CAS_ATTEMPTS):
            current = await self.store.get()
            if current is None:
                raise NoRollout("no rollout (start one with `otm rollout start IMAGE`)")
            if current.status not in allowed:
                raise RolloutConflict(
                    f"rollout {current.rollout_id} is {current.status.value}: cannot go {to.value}"
                )
            changed = _with(current, status=to, reason=reason)
            try:
                stored = await self.store.put(changed, expect_version=current.version)
            except RolloutConflict:
                if attempt + 1 == CAS_ATTEMPTS:
                    raise
                continue  # the leader wrote meanwhile (a wave, a reason): read again
            log.info("rollout %s: %s (%s)", stored.rollout_id, to.value, reason)
            self._changed()
            return stored
        raise AssertionError("unreachable")

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _gate(raw: Any) -> Gate:
    if not isinstance(raw, dict):
        raise ValueError("gate must be an object")
    unknown = set(raw) - {"min_wakes", "min_failures", "max_error_rate_increase"}
    if unknown:
        raise ValueError(f"unknown gate field(s): {', '.join(sorted(unknown))}")
    for name in ("min_wakes", "min_failures"):
        if name in raw and (not isinstance(raw[name], int) or raw[name] < 0):
            raise ValueError(f"gate.{name} must be an integer >= 0")
    rate = raw.get("max_error_rate_increase", Gate.max_error_rate_increase)
    if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError("gate.max_error_rate_increase must be between 0 and 1")
    return Gate(**raw)


def _with(rollout: Rollout, **changes: Any) -> Rollout:
    return Rollout.from_json({**rollout.to_json(), **changes})


@dataclass(eq=False, kw_only=True)
class RolloutController:
    store: RolloutStore
    registry: Registry
    default_image: str
    tick_s: float = 5.0
    publish: Callable[..., Awaitable[None]]
    """``Coordination.publish_event``: every replica's caches and watchers learn of an
    image change; a tenant a rollback made wakeable again (``resumed``) delivers what
    it buffered meanwhile."""
    on_pool_mix: Callable[[dict[str, float]], None] | None = None
    """Told which images the warm pool should hold, and in what shares."""

    def __post_init__(self) -> None:
        self._events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._leading = False
        self._kick = asyncio.Event()

    # -- inputs -------------------------------------------------------------------------

    def kick(self) -> None:
        self._kick.set()

    def on_event(self, tenant_id: str, event: dict[str, Any]) -> None:
        """Every replica's tenant events (TenantSignals); kept only while leading."""
        if not self._leading:
            return
        self._events.append((tenant_id, event))
        if event.get("kind") in ("idle", "failed", "wake_failed", "created", "running"):
            self._kick.set()

    # -- the loop (leader only) -----------------------------------------------------------

    async def run(self) -> None:
        self._leading = True
        self._events.clear()
        try:
            while True:
                self._kick.clear()
                try:
                    await self.step()
                except (aioredis.RedisError, OSError, OtmError) as exc:
                    log.warning("rollout step failed (retried): %s", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.tick_s):
                        await self._kick.wait()
        finally:
            self._leading = False

    async def step(self) -> Rollout | None:
        """One pass: count events, move tenants, apply the gate's decision."""
        rollout = await self.store.get()
        self._tell_pool(rollout)
        if rollout is None or rollout.status not in ACTIVE:
            self._events.clear()
            return rollout
        moved = await self.store.moved(rollout.rollout_id)
        await self._count_events(rollout, moved)
        tenants = [t for t in await self.registry.list() if t.status != TenantStatus.DELETED]
        pending = to_restore = 0
        if rollout.status == RolloutStatus.ROLLING_BACK:
            to_restore = await self._restore(rollout, moved, {t.tenant_id: t for t in tenants})
        elif rollout.status == RolloutStatus.RUNNING:
            pending = await self._move_wave(rollout, moved, tenants)
        new, old = await self.store.health(rollout)
        step, why = next_step(
            rollout, new=new, old=old, now=time.time(), pending=pending, to_restore=to_restore
        )
        return await self._apply(rollout, step, why)

    def _tell_pool(self, rollout: Rollout | None) -> None:
        if self.on_pool_mix is not None:
            self.on_pool_mix(pool_mix(rollout, self.default_image))

    async def _count_events(self, rollout: Rollout, moved: dict[str, str]) -> None:
        while self._events:
            tenant_id, event = self._events.popleft()
            field = _health_field(event)
            if field is not None:
                side = "new" if tenant_id in moved else "old"
                await self.store.count(rollout, side, field)

    def _selected(self, rollout: Rollout, tenants: list[Tenant]) -> list[Tenant]:
        if not rollout.selector:
            return tenants
        requirements = parse_label_selector(rollout.selector)
        return [t for t in tenants if matches_labels(t.labels, requirements)]

    async def _move_wave(
        self, rollout: Rollout, moved: dict[str, str], tenants: list[Tenant]
    ) -> int:
        """Move the wave's tenants that are not running; how many still wait."""
        selected = {t.tenant_id: t for t in self._selected(rollout, tenants)}
        pending = 0
        for tenant_id in wave_members(selected, rollout.fraction):
            if tenant_id in moved:
                continue
            tenant = selected[tenant_id]
            if tenant.status in BUSY:
                pending += 1
                continue
            # Recorded first: if we die between the two writes, a rollback still knows
            # what to put back (an unmoved tenant restored to its own image is a no-op).
            await self.store.mark_moved(rollout.rollout_id, tenant_id, tenant.image or "")
            try:
                await self.registry.update(
                    tenant_id, if_version=tenant.version, image=rollout.image
                )
            except (ConditionFailed, TenantNotFound):
                await self.store.unmark(rollout.rollout_id, tenant_id)
                pending += 1  # changed underneath (a wake started): next pass
                continue
            log.info("rollout %s: tenant %s → %s", rollout.rollout_id, tenant_id, rollout.image)
            await self.publish(
                tenant_id, "image_changed", image=rollout.image, rollout=rollout.rollout_id
            )
        return pending

    async def _restore(
        self, rollout: Rollout, moved: dict[str, str], tenants: dict[str, Tenant]
    ) -> int:
        """Put moved tenants that are not running back on their old image; how many wait."""
        waiting = 0
        for tenant_id, prior in moved.items():
            tenant = tenants.get(tenant_id)
            if tenant is None:
                await self.store.unmark(rollout.rollout_id, tenant_id)
                continue
            if tenant.status in BUSY:
                waiting += 1
                continue
            changes: dict[str, Any] = {}
            if tenant.image == rollout.image:  # an operator may have re-pinned it meanwhile
                changes["image"] = prior or None
            reset = tenant.status == TenantStatus.FAILED
            if reset:
                # Failed on the new image (most likely why we roll back): wakeable again.
                changes.update(
                    status=TenantStatus.IDLE,
                    status_reason=f"rollout {rollout.rollout_id} rolled back",
                    wake_attempts=0,
                )
            try:
                if changes:
                    await self.registry.update(tenant_id, if_version=tenant.version, **changes)
            except (ConditionFailed, TenantNotFound):
                waiting += 1
                continue
            await self.store.unmark(rollout.rollout_id, tenant_id)
            log.info(
                "rollout %s: tenant %s back on %s",
                rollout.rollout_id,
                tenant_id,
                prior or self.default_image,
            )
            await self.publish(
                tenant_id, "image_changed", image=prior or None, rollout=rollout.rollout_id
            )
            if reset:
                await self.publish(
                    tenant_id, "resumed", reason=f"rollout {rollout.rollout_id} rolled back"
                )
        return waiting

    async def _apply(self, rollout: Rollout, step: Step, why: str) -> Rollout:
        now = time.time()
        if step is Step.NOTHING:
            if why and why != rollout.reason:
                return await self._put(_with(rollout, reason=why), rollout)
            return rollout
        if step is Step.ADVANCE:
            changed = _with(rollout, wave=rollout.wave + 1, wave_started_at=now, reason=why)
        elif step is Step.COMPLETE:
            changed = _with(rollout, status=RolloutStatus.COMPLETED, reason=why)
        elif step is Step.ROLL_BACK:
            log.error("rollout %s: %s; rolling back", rollout.rollout_id, why)
            changed = _with(rollout, status=RolloutStatus.ROLLING_BACK, reason=why)
        else:
            changed = _with(
                rollout, status=RolloutStatus.ROLLED_BACK, reason=f"{rollout.reason}; {why}"
            )
        stored = await self._put(changed, rollout)
        log.info("rollout %s: %s (%s)", rollout.rollout_id, step.value, why)
        if stored.status not in ACTIVE:
            await self.store.expire_finished(stored)
        self._tell_pool(stored)
        self._kick.set()  # the next wave's tenants can move right away
        return stored

    async def _put(self, changed: Rollout, current: Rollout) -> Rollout:
        return await self.store.put(changed, expect_version=current.version)


def _health_field(event: dict[str, Any]) -> str | None:
    """Which health counter a tenant event feeds (None: none)."""
    kind = event.get("kind")
    if kind == "running":
        # A wake's success; the reconciler's adoptions carry a reason and are not wakes.
        return None if event.get("reason") else "wakes_ok"
    if kind == "wake_failed" or (kind == "failed" and "attempts" in event):
        return "wakes_failed"
    if kind in ("instance_lost", "failed"):
        return "agents_lost"  # lost, or a crash loop (the reconciler's failed)
    if kind == "agent_5xx":
        return "agent_5xx"
    return None
