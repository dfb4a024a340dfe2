"""Registry contract: every adapter (SQLite file, DynamoDB on moto) behaves the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from daemon.model import (
    ConditionFailed,
    InvalidTenantId,
    Tenant,
    TenantExists,
    TenantNotFound,
    TenantStatus,
)
from daemon.ports import Registry
from tests.contract.conftest import RegistryFactory

IDLE = TenantStatus.IDLE
PROVISIONING = TenantStatus.PROVISIONING
RUNNING = TenantStatus.RUNNING


def full_tenant(tenant_id: str = "acme") -> Tenant:
    """A tenant with every optional field set."""
    return Tenant(
        tenant_id=tenant_id,
        status=TenantStatus.RUNNING,
        status_reason="woken by message",
        bot_token="123456:ABC-secret",
        idle_timeout_s=900,
        endpoint="http://10.0.3.7:8787/telegram-webhook",
        gateway_url="http://10.0.3.7:18789",
        pod_name=f"openclaw-{tenant_id}",
        image="ghcr.io/openclaw/openclaw:1.2.3",
        labels={"team": "sales", "app.kubernetes.io/tier": "gold", "empty": ""},
        wake_attempts=2,
        ingress="polling",
    )


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# -- create / get / list ------------------------------------------------------


async def test_create_then_get_returns_every_field(registry: Registry) -> None:
    tenant = full_tenant()
    assert await registry.create(tenant) == tenant
    stored = await registry.get("acme")
    assert stored == tenant
    assert stored.labels == {"team": "sales", "app.kubernetes.io/tier": "gold", "empty": ""}
    assert stored.idle_timeout_s == 900 and isinstance(stored.idle_timeout_s, int)
    assert stored.wake_attempts == 2 and isinstance(stored.wake_attempts, int)
    assert stored.version == 1 and isinstance(stored.version, int)


async def test_secrets_round_trip(registry: Registry) -> None:
    tenant = Tenant(tenant_id="secretive", bot_token="42:token")
    await registry.create(tenant)
    stored = await registry.get("secretive")
    assert stored.bot_token == "42:token"
    assert stored.webhook_secret == tenant.webhook_secret and len(stored.webhook_secret) == 64
    assert stored.gateway_token == tenant.gateway_token
    assert stored.hooks_token == tenant.hooks_token
    updated = await registry.update("secretive", bot_token="43:rotated")
    assert updated.bot_token == "43:rotated"
    assert (await registry.get("secretive")).bot_token == "43:rotated"
    # Rotating the bot token leaves the generated secrets alone.
    assert updated.webhook_secret == tenant.webhook_secret


async def test_none_fields_and_empty_labels_round_trip(registry: Registry) -> None:
    await registry.create(Tenant(tenant_id="bare"))
    stored = await registry.get("bare")
    assert stored.endpoint is None and stored.gateway_url is None
    assert stored.pod_name is None and stored.image is None and stored.idle_timeout_s is None
    assert stored.labels == {} and stored.bot_token == "" and stored.status_reason == ""

    running = await registry.update(
        "bare",
        endpoint="http://10.0.0.1:8787/telegram-webhook",
        idle_timeout_s=60,
        labels={"a": "b"},
    )
    assert running.endpoint == "http://10.0.0.1:8787/telegram-webhook"
    assert (await registry.update("bare", ingress="polling")).ingress == "polling"
    assert (await registry.get("bare")).ingress == "polling"
    cleared = await registry.update(
        "bare", endpoint=None, idle_timeout_s=None, labels={}, ingress=None
    )
    assert cleared.endpoint is None and cleared.idle_timeout_s is None and cleared.labels == {}
    assert (await registry.get("bare")).ingress is None
    stored = await registry.get("bare")
    assert stored.endpoint is None and stored.idle_timeout_s is None and stored.labels == {}


async def test_timestamps_are_tz_aware_utc(registry: Registry) -> None:
    await registry.create(Tenant(tenant_id="clock"))
    stored = await registry.get("clock")
    for value in (stored.created_at, stored.updated_at, stored.last_active_at):
        assert_utc(value)
    updated = await registry.update("clock", status_reason="tick")
    assert_utc(updated.updated_at)
    assert updated.updated_at >= stored.updated_at
    assert updated.created_at == stored.created_at
    await registry.touch("clock", datetime.now(UTC) + timedelta(seconds=5))
    assert_utc((await registry.get("clock")).last_active_at)


async def test_list_is_sorted_and_filters_by_status(registry: Registry) -> None:
    ids = ["delta", "alpha", "echo", "charlie", "bravo"]
    for tenant_id in ids:
        await registry.create(Tenant(tenant_id=tenant_id))
    for tenant_id in ("echo", "alpha", "charlie"):
        await registry.update(tenant_id, status=RUNNING)

    assert [t.tenant_id for t in await registry.list()] == sorted(ids)
    running = await registry.list(status=RUNNING)
    assert [t.tenant_id for t in running] == ["alpha", "charlie", "echo"]
    assert all(t.status is RUNNING for t in running)
    assert [t.tenant_id for t in await registry.list(status=IDLE)] == ["bravo", "delta"]
    assert await registry.list(status=TenantStatus.FAILED) == []
    # Records from list carry the full data, secrets included.
    assert (await registry.list(status=RUNNING))[0] == await registry.get("alpha")


async def test_list_of_empty_registry(registry: Registry) -> None:
    assert await registry.list() == []
    assert await registry.list(status=IDLE) == []


# -- errors ---------------------------------------------------------------------


async def test_duplicate_create_fails_and_keeps_the_original(registry: Registry) -> None:
    original = Tenant(tenant_id="dup", bot_token="1:first")
    await registry.create(original)
    with pytest.raises(TenantExists):
        await registry.create(Tenant(tenant_id="dup", bot_token="2:second", status=RUNNING))
    assert await registry.get("dup") == original


async def test_unknown_tenant(registry: Registry) -> None:
    with pytest.raises(TenantNotFound):
        await registry.get("ghost")
    with pytest.raises(TenantNotFound):
        await registry.update("ghost", status=RUNNING)
    with pytest.raises(TenantNotFound):
        await registry.update("ghost", if_status={IDLE}, status=RUNNING)
    with pytest.raises(TenantNotFound):
        await registry.update("ghost", if_version=1, status=RUNNING)
    with pytest.raises(TenantNotFound):
        await registry.delete("ghost")
    assert await registry.list() == []


async def test_invalid_tenant_id(registry: Registry) -> None:
    for bad_id in ("Bad_ID", "-lead", "trail-", "a" * 41, "has.dot", "", "warm-reserved"):
        with pytest.raises(InvalidTenantId):
            await registry.get(bad_id)
        with pytest.raises(InvalidTenantId):
            await registry.update(bad_id, status=RUNNING)
        with pytest.raises(InvalidTenantId):
            await registry.delete(bad_id)
        with pytest.raises(InvalidTenantId):
            Tenant(tenant_id=bad_id)


async def test_unknown_or_immutable_field_is_rejected(registry: Registry) -> None:
    tenant = await registry.create(Tenant(tenant_id="fixed"))
    for change in ({"colour": "red"}, {"version": 9}, {"created_at": datetime.now(UTC)}):
        with pytest.raises(ValueError):
            await registry.update("fixed", **change)
    with pytest.raises(ValueError):
        await registry.update("fixed", labels={"bad key!": "x"})
    assert await registry.get("fixed") == tenant


async def test_delete_removes_the_record(registry: Registry) -> None:
    await registry.create(Tenant(tenant_id="gone"))
    await registry.create(Tenant(tenant_id="stays"))
    await registry.delete("gone")
    with pytest.raises(TenantNotFound):
        await registry.get("gone")
    with pytest.raises(TenantNotFound):
        await registry.delete("gone")
    assert [t.tenant_id for t in await registry.list()] == ["stays"]
    # The id is free again.
    await registry.create(Tenant(tenant_id="gone"))
    assert (await registry.get("gone")).version == 1


# -- conditional updates --------------------------------------------------------


async def test_update_bumps_version_and_applies_changes(registry: Registry) -> None:
    created = await registry.create(Tenant(tenant_id="ver"))
    first = await registry.update("ver", status=PROVISIONING, wake_attempts=1)
    assert (first.version, first.status, first.wake_attempts) == (2, PROVISIONING, 1)
    second = await registry.update("ver", status=RUNNING, pod_name="openclaw-ver")
    assert (second.version, second.status, second.pod_name) == (3, RUNNING, "openclaw-ver")
    assert second.wake_attempts == 1  # untouched fields persist
    assert second.updated_at >= first.updated_at >= created.updated_at
    assert await registry.get("ver") == second
    # An update without changes is still a write.
    assert (await registry.update("ver")).version == 4


async def test_update_if_status(registry: Registry) -> None:
    await registry.create(Tenant(tenant_id="cond"))
    won = await registry.update("cond", if_status={IDLE, TenantStatus.FAILED}, status=PROVISIONING)
    assert won.status is PROVISIONING and won.version == 2

    with pytest.raises(ConditionFailed) as failure:
        await registry.update("cond", if_status={IDLE}, status=RUNNING, status_reason="late")
    message = str(failure.value)
    assert "provisioning" in message and "idle" in message
    assert await registry.get("cond") == won  # the loser changed nothing

    with pytest.raises(ConditionFailed):
        await registry.update("cond", if_status=set(), status=RUNNING)
    assert await registry.get("cond") == won


async def test_update_if_version(registry: Registry) -> None:
    await registry.create(Tenant(tenant_id="pin"))
    won = await registry.update("pin", if_version=1, status_reason="first")
    assert won.version == 2

    with pytest.raises(ConditionFailed) as failure:
        await registry.update("pin", if_version=1, status_reason="stale")
    assert "version" in str(failure.value) and "2" in str(failure.value)
    assert await registry.get("pin") == won

    both = await registry.update("pin", if_status={IDLE}, if_version=2, status=RUNNING)
    assert both.version == 3 and both.status is RUNNING
    with pytest.raises(ConditionFailed):
        await registry.update("pin", if_status={RUNNING}, if_version=2, status=IDLE)
    with pytest.raises(ConditionFailed):
        await registry.update("pin", if_status={IDLE}, if_version=3, status=IDLE)
    assert await registry.get("pin") == both


async def _race(registries: list[Registry], tenant_id: str, contenders: int) -> list[Any]:
    """``contenders`` concurrent idle→provisioning claims spread over ``registries``."""
    return await asyncio.gather(
        *(
            registries[i % len(registries)].update(
                tenant_id, if_status={IDLE}, status=PROVISIONING, status_reason=f"claim-{i}"
            )
            for i in range(contenders)
        ),
        return_exceptions=True,
    )


def _check_single_winner(results: list[Any]) -> Tenant:
    winners = [r for r in results if isinstance(r, Tenant)]
    losers = [r for r in results if not isinstance(r, Tenant)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConditionFailed) for r in losers), losers
    return winners[0]


@pytest.mark.parametrize("replicas", [1, 2])
async def test_concurrent_claims_have_exactly_one_winner(
    open_registry: RegistryFactory, replicas: int
) -> None:
    registries = [await open_registry(serialized=True) for _ in range(replicas)]
    await registries[0].create(Tenant(tenant_id="contended"))
    for round_ in range(3):
        results = await _race(registries, "contended", contenders=8)
        winner = _check_single_winner(results)
        stored = await registries[-1].get("contended")
        assert stored == winner
        assert stored.status is PROVISIONING
        assert stored.version == 2 + 2 * round_
        # Reset for the next round (plain update, also a version bump).
        await registries[0].update("contended", status=IDLE)


# -- touch ------------------------------------------------------------------------


async def test_touch_moves_last_active_forward_only(registry: Registry) -> None:
    created = await registry.create(Tenant(tenant_id="busy"))
    later = created.last_active_at + timedelta(minutes=5)
    await registry.touch("busy", later)
    touched = await registry.get("busy")
    assert touched.last_active_at == later
    assert touched.version == created.version  # activity never fails lifecycle writes
    # Earlier and equal times are ignored.
    await registry.touch("busy", later - timedelta(minutes=1))
    await registry.touch("busy", later)
    assert (await registry.get("busy")).last_active_at == later
    # A version-pinned lifecycle write still succeeds after activity.
    assert (await registry.update("busy", if_version=created.version, status=RUNNING)).version == 2


async def test_touch_accepts_other_timezones(registry: Registry) -> None:
    created = await registry.create(Tenant(tenant_id="tz"))
    plus_two = timezone(timedelta(hours=2))
    later = (created.last_active_at + timedelta(seconds=30)).astimezone(plus_two)
    await registry.touch("tz", later)
    assert (await registry.get("tz")).last_active_at == later
    # One second earlier, written in a zone whose wall clock reads later.
    earlier = (later - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=10)))
    await registry.touch("tz", earlier)
    assert (await registry.get("tz")).last_active_at == later


async def test_touch_never_creates(registry: Registry) -> None:
    await registry.touch("nobody", datetime.now(UTC))
    with pytest.raises(TenantNotFound):
        await registry.get("nobody")
    assert await registry.list() == []


async def test_touch_after_delete_does_not_resurrect(registry: Registry) -> None:
    await registry.create(Tenant(tenant_id="late"))
    await registry.delete("late")
    await registry.touch("late", datetime.now(UTC) + timedelta(hours=1))
    assert await registry.list() == []
