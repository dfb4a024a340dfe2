"""The start-up key migration against a real redis-server seeded with an older release's
key layout: every kind moves to its hash-tagged name, TTLs kept, idempotent, merges sets."""

from __future__ import annotations

import redis.asyncio as aioredis

from daemon import redis_keys as k
from daemon.msgpath.buffer import Buffer
from daemon.redis_migrate import migrate_key_layout, new_name

OLD_TO_NEW = {
    "otm:buf:alpha": k.buffer_key("alpha"),
    "otm:tries:alpha": k.tries_key("alpha"),
    "otm:dead:alpha": k.dead_key("alpha"),
    "otm:endpoint:alpha": k.endpoint_key("alpha"),
    "otm:events:alpha": k.event_log_key("alpha"),
    "otm:crashes:alpha": k.crashes_key("alpha"),
    "otm:simulated:alpha": k.simulated_update_key("alpha"),
    "otm:poll-offset:alpha": k.poll_offset_key("alpha"),
    "otm:seen:alpha:42": k.seen_key("alpha", 42),
    "otm:seen:alpha:-7": k.seen_key("alpha", -7),
    "otm:usage:alpha:2026120415": k.usage_hour_key("alpha", "2026120415"),
    "otm:usage:day:alpha:20261204": k.usage_day_key("alpha", "20261204"),
    "otm:usage:day:2026120415": k.usage_hour_key("day", "2026120415"),  # a tenant named day
    "otm:ratelimit:inbound:alpha:60:29785": k.rate_window_key("alpha", "inbound", 60, 29785),
    "otm:pending": k.PENDING_KEY,
    "otm:admin-tokens": k.ADMIN_TOKENS_KEY,
    "otm:admin-token-digests": k.ADMIN_TOKEN_DIGESTS_KEY,
    "otm:admin-token-revoked": k.REVOKED_BOOTSTRAP_KEY,
    "otm:wake-admission:queue": k.WAKE_ADMISSION_PREFIX + "queue",
}
UNTOUCHED = [
    "otm:config",
    "otm:leader",
    "otm:audit",
    "otm:rollout",
    "otm:usage:tenants",
    "otm:lock:delivery:alpha",
    "otm:model-key-secret",
    "otm:rollout:r1:moved",
    k.buffer_key("beta"),
]


def test_new_names_of_the_old_layout() -> None:
    for old, new in OLD_TO_NEW.items():
        assert new_name(old) == new, old
    for key in UNTOUCHED:
        assert new_name(key) is None, key


async def test_migration_moves_every_old_key_once_keeping_data_and_ttls(
    redis_client: aioredis.Redis,
) -> None:
    r = redis_client
    await r.xadd("otm:buf:alpha", {"u": 1, "b": b'{"update_id": 1}', "t": 5})
    await r.xadd("otm:buf:alpha", {"u": 2, "b": b'{"update_id": 2}', "t": 6})
    await r.hset("otm:tries:alpha", "1-0", 2)
    await r.xadd("otm:dead:alpha", {"u": 0, "b": b"{}"})
    await r.set("otm:endpoint:alpha", "http://agent", px=60_000)
    await r.xadd("otm:events:alpha", {"event": "{}"})
    await r.set("otm:crashes:alpha", 1)
    await r.set("otm:simulated:alpha", 3)
    await r.hset("otm:poll-offset:alpha", "1301", 77)
    await r.set("otm:seen:alpha:42", "1", px=3_600_000)
    await r.set("otm:seen:alpha:-7", "1", px=3_600_000)
    await r.hset("otm:usage:alpha:2026120415", "m|requests", 4)
    await r.set("otm:usage:day:alpha:20261204", 99)
    await r.hset("otm:usage:day:2026120415", "m|requests", 1)
    await r.set("otm:ratelimit:inbound:alpha:60:29785", 5)
    await r.sadd("otm:pending", "alpha", "gamma")
    await r.sadd(k.PENDING_KEY, "beta")  # a set under both names is merged
    await r.hset("otm:admin-tokens", "ci", '{"sha256": "d"}')
    await r.hset("otm:admin-token-digests", "d", "ci")
    await r.sadd("otm:admin-token-revoked", "x")
    await r.zadd("otm:wake-admission:queue", {"alpha": 1})
    for key in UNTOUCHED[:-1]:
        await r.set(key, "stays")

    assert await migrate_key_layout(r) == len(OLD_TO_NEW)

    for old, new in OLD_TO_NEW.items():
        assert not await r.exists(old), old
        assert await r.exists(new), new
    for key in UNTOUCHED[:-1]:
        assert await r.get(key) == b"stays"
    assert 3_000_000 < await r.pttl(k.seen_key("alpha", 42)) <= 3_600_000
    assert 0 < await r.pttl(k.endpoint_key("alpha")) <= 60_000
    assert await r.smembers(k.PENDING_KEY) == {b"alpha", b"beta", b"gamma"}
    assert await r.hget(k.ADMIN_TOKEN_DIGESTS_KEY, "d") == b"ci"
    buffer = Buffer(r)
    assert [u.update_id for u in await buffer.head("alpha")] == [1, 2]
    assert "alpha" in await buffer.pending_tenants()
    assert not (await buffer.append("alpha", 42, b'{"update_id": 42}')).added

    # Idempotent: nothing left to move.
    assert await migrate_key_layout(r) == 0


async def test_a_stream_under_both_names_is_kept_not_dropped(redis_client: aioredis.Redis) -> None:
    await redis_client.xadd("otm:buf:alpha", {"u": 1, "b": b"{}"})
    await redis_client.xadd(k.buffer_key("alpha"), {"u": 2, "b": b"{}"})
    assert await migrate_key_layout(redis_client) == 0
    assert await redis_client.xlen("otm:buf:alpha") == 1
    assert await redis_client.xlen(k.buffer_key("alpha")) == 1
