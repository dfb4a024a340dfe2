"""Every Redis key and channel name the daemon uses, in one place.

All live under ``otm:`` so a shared Redis can hold other data too, and a
``SCAN otm:*`` shows everything otm keeps.

Hash tags (Redis Cluster): a key's slot is the hash of the text between its first ``{`` and
the next ``}``. Every key of one tenant carries ``{t:<tenant>}`` (``otm:{t:alpha}:buf``), so
all of a tenant's keys live in one slot and each per-tenant script or MULTI touches one slot.
Global keys that one script touches together share a tag too (``{pending}``, ``{admin}``,
``{wake-admission}``); the other global keys are used one at a time. The layout is the same
on a standalone Redis (tags are plain characters there); daemon/redis_migrate.py renames the
keys of older releases at start-up.
"""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "otm:"

# Coordination (coordination.py): live config, tenant events, endpoints, locks.
CONFIG_KEY = PREFIX + "config"
CONFIG_CHANNEL = PREFIX + "config:changed"
EVENTS_CHANNEL = PREFIX + "events"

# Message path (buffer.py, delivery.py, signals.py).
PENDING_KEY = PREFIX + "{pending}:tenants"
"""Set of tenant ids that may have buffered updates (a superset; see buffer.py)."""
PENDING_RECHECK_KEY = PREFIX + "{pending}:recheck"
"""Sorted set: tenants taken out of PENDING_KEY whose buffer is being re-checked (score: the
remover's ticket); read together with PENDING_KEY, so a remover's crash loses nothing."""
PENDING_TICKET_KEY = PREFIX + "{pending}:ticket"
"""Counter handing out the removers' tickets."""
WORK_CHANNEL = PREFIX + "work"
"""``"{origin} {tenant_id}"``: a tenant has work another replica should deliver."""

# Leader election (leader.py, Redis lease backend).
LEADER_KEY = PREFIX + "leader"

# Admin access (admin/tokens.py, admin/audit.py): one tag, the token scripts touch two keys.
ADMIN_TOKENS_KEY = PREFIX + "{admin}:tokens"
"""Hash: named admin token → its record (JSON with the SHA-256 of the secret, never the secret)."""
ADMIN_TOKEN_DIGESTS_KEY = PREFIX + "{admin}:token-digests"
"""Hash: SHA-256 of a named token's secret → its name (the lookup on every admin request)."""
REVOKED_BOOTSTRAP_KEY = PREFIX + "{admin}:token-revoked"
"""Set: SHA-256 digests of revoked configured (``admin``) tokens."""
AUDIT_STREAM = PREFIX + "audit"
"""The admin audit log (a Redis Stream, trimmed by count and age); not per tenant, so it
outlives a deleted tenant."""

# Wake admission (msgpath/wake_admission.py): one script touches all four.
WAKE_ADMISSION_PREFIX = PREFIX + "{wake-admission}:"

# Model gateway usage (model_gateway/usage.py).
USAGE_TENANTS_KEY = PREFIX + "usage:tenants"
"""Set: tenants with recorded model usage."""


def tenant_tag(tenant_id: str) -> str:
    """The hash tag every key of the tenant carries (tenant ids hold no braces)."""
    return "{t:" + tenant_id + "}"


def tenant_prefix(tenant_id: str) -> str:
    return f"{PREFIX}{tenant_tag(tenant_id)}:"


def _tenant_key(kind: str) -> Callable[[str], str]:
    def key(tenant_id: str) -> str:
        return f"{tenant_prefix(tenant_id)}{kind}"

    key.__name__ = f"{kind}_key"
    return key


TENANT_KEY_KINDS = (
    "endpoint",
    "events",
    "buf",
    "tries",
    "dead",
    "crashes",
    "simulated",
    "poll-offset",
)
"""Kinds of the single per-tenant keys (the migration renames ``otm:<kind>:<id>``)."""

endpoint_key = _tenant_key("endpoint")
"""A running tenant's agent webhook URL (with a TTL)."""
event_log_key = _tenant_key("events")
"""The tenant's recent events, for operators (a Redis Stream)."""
buffer_key = _tenant_key("buf")
"""The tenant's durable update buffer (a Redis Stream)."""
tries_key = _tenant_key("tries")
"""Failed delivery attempts per buffered entry id (a hash)."""
dead_key = _tenant_key("dead")
"""Dead-lettered updates of a tenant (a Redis Stream)."""
crashes_key = _tenant_key("crashes")
"""Agent losses within the reconciler's crash window."""
simulated_update_key = _tenant_key("simulated")
"""Counter of the admin API's simulated update ids."""
poll_offset_key = _tenant_key("poll-offset")
"""Long polling: the next ``getUpdates`` offset per bot id (a hash; the bot id is the
token's public numeric prefix, so a re-issued token of the same bot keeps its place)."""


def lock_key(name: str) -> str:
    """A lock or lease taken with Coordination.acquire_lock (wake locks, delivery leases).
    Tenant lock names carry the tenant's tag, so the key shares the tenant's slot."""
    return f"{PREFIX}lock:{name}"


def seen_key(tenant_id: str, update_id: int) -> str:
    """Dedupe marker of one update_id (Telegram retries)."""
    return f"{tenant_prefix(tenant_id)}seen:{update_id}"


def seen_pattern(tenant_id: str) -> str:
    """SCAN pattern of all of a tenant's dedupe markers (tenant ids and braces are no glob
    characters)."""
    return f"{tenant_prefix(tenant_id)}seen:*"


def delivery_lease_name(tenant_id: str) -> str:
    """Name of a tenant's delivery lease for Coordination's lock functions."""
    return f"{tenant_tag(tenant_id)}:delivery"


def wake_lock_name(tenant_id: str) -> str:
    """Name of a tenant's wake lock (one wake at a time across replicas)."""
    return f"{tenant_tag(tenant_id)}:wake"


def poll_lease_name(tenant_id: str) -> str:
    """Name of a tenant's long-polling lease (one ``getUpdates`` consumer across replicas)."""
    return f"{tenant_tag(tenant_id)}:poll"


def usage_hour_key(tenant_id: str, hour: str) -> str:
    """Model usage counters of one UTC hour (``YYYYMMDDHH``), a hash."""
    return f"{tenant_prefix(tenant_id)}usage:{hour}"


def usage_day_key(tenant_id: str, day: str) -> str:
    """Tokens used on one UTC day (``YYYYMMDD``), for the daily quota."""
    return f"{tenant_prefix(tenant_id)}usage-day:{day}"


def rate_window_key(tenant_id: str, name: str, window_s: int, window: int) -> str:
    """Count of one rate limit's window."""
    return f"{tenant_prefix(tenant_id)}ratelimit:{name}:{window_s}:{window}"


# Fleet image rollouts (daemon/lifecycle/rollout.py).
ROLLOUT_KEY = PREFIX + "rollout"
"""The current (or last) rollout: one JSON document, written compare-and-set."""


def rollout_moved_key(rollout_id: str) -> str:
    """Hash of the tenants a rollout moved → the image each had before ("" = default)."""
    return f"{PREFIX}rollout:{rollout_id}:moved"


def rollout_health_key(rollout_id: str, wave: int) -> str:
    """Hash of a wave's health counters, ``{new|old}:{field}``."""
    return f"{PREFIX}rollout:{rollout_id}:health:{wave}"
