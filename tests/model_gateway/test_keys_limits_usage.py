"""Keys (pure), limits and usage on a real redis-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from daemon.model_gateway.keys import ModelKeys
from daemon.model_gateway.limits import MinuteWindow, ModelLimits
from daemon.model_gateway.usage import UsageStore
from daemon.model_pricing import cost_usd, parse_prices
from tests.support.redis_cluster import BACKENDS

# The Redis tests also run on a Redis Cluster (tests/conftest.py parametrizes redis_backend).
REDIS_BACKENDS = BACKENDS

SECRET = "s" * 32


def test_a_key_matches_only_its_tenant_and_current_id() -> None:
    keys = ModelKeys(SECRET)
    key = keys.key_for("alice", "k1")
    parsed = keys.parse(key)
    assert parsed is not None and parsed.tenant_id == "alice"
    assert keys.matches(parsed, "k1")
    assert not keys.matches(parsed, "k2")  # rotated
    assert not keys.matches(parsed, "")  # revoked
    # Bob's key id and mac under alice's name: the mac binds the tenant id.
    bob = keys.parse(keys.key_for("bob", "k1"))
    assert bob is not None
    forged = keys.parse(f"otm-mk-alice.{bob.key_id}.{bob.mac}")
    assert forged is not None and not keys.matches(forged, "k1")
    # Another deployment's secret derives other keys.
    assert not ModelKeys("t" * 32).matches(parsed, "k1")
    assert keys.key_for("alice", "") == ""
    for bad in ("", "sk-x", "otm-mk-", "otm-mk-Alice.k.m", "otm-mk-alice.k"):
        assert keys.parse(bad) is None


def test_prices() -> None:
    prices = parse_prices(["gpt-4o-mini=0.15:0.6", "anthropic.claude-3:haiku=1:5"])
    assert cost_usd(prices, "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd(prices, "anthropic.claude-3:haiku", 2_000_000, 0) == pytest.approx(2.0)
    assert cost_usd(prices, "other", 1, 1) is None
    for bad in ("x", "x=1", "x=a:b", "x=-1:1"):
        with pytest.raises(ValueError):
            parse_prices([bad])


@pytest.fixture
def client(redis_client: aioredis.Redis) -> aioredis.Redis:
    return redis_client  # the root conftest's client of the test's Redis


async def test_request_limit_refuses_then_recovers(client: aioredis.Redis) -> None:
    window = MinuteWindow(client, "t", limit=2, window_s=1)
    # Start at a window's beginning so both takes land in one window.
    await asyncio.sleep(1 - (datetime.now(UTC).timestamp() % 1))
    assert await window.take("a") is None
    assert await window.take("a") is None
    assert await window.take("a") == 1  # Retry-After: the next window
    assert await window.take("b") is None  # per tenant
    await asyncio.sleep(1.05)
    assert await window.take("a") is None  # recovered


async def test_daily_tokens_refuse_until_midnight_and_recover_next_day(
    client: aioredis.Redis,
) -> None:
    usage = UsageStore(client)
    limits = ModelLimits(client, usage, requests_per_min=0, tokens_per_day=100)
    today = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    assert await limits.check("a", today) is None
    await usage.record("a", "m", prompt_tokens=60, completion_tokens=40, at=today)
    refusal = await limits.check("a", today)
    assert refusal is not None and refusal.retry_after_s == 3600
    assert await limits.check("b", today) is None
    assert await limits.check("a", today + timedelta(hours=1)) is None


async def test_usage_sums_buckets_since(client: aioredis.Redis) -> None:
    usage = UsageStore(client)
    now = datetime.now(UTC)
    await usage.record(
        "a", "m1", prompt_tokens=3, completion_tokens=4, at=now - timedelta(hours=30)
    )
    await usage.record("a", "m1", prompt_tokens=5, completion_tokens=6, at=now - timedelta(hours=2))
    await usage.record("a", "m2", prompt_tokens=7, completion_tokens=8, at=now)
    [day] = await usage.since(["a"], now - timedelta(hours=24), now)
    assert day.total().requests == 2
    assert (day.total().prompt_tokens, day.total().completion_tokens) == (12, 14)
    assert day.models["m1"].prompt_tokens == 5
    [week] = await usage.since(["a"], now - timedelta(days=7), now)
    assert week.total().total_tokens == 33
    assert await usage.tenants() == ["a"]
