"""Every Redis key and channel name the daemon uses, in one place.

All live under ``otm:`` so a shared Redis can hold other data too, and a
``SCAN otm:*`` shows everything otm keeps.
"""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "otm:"

# Coordination (coordination.py): live config, tenant events, endpoints, locks.
CONFIG_KEY = PREFIX + "config"
CONFIG_CHANNEL = PREFIX + "config:changed"
EVENTS_CHANNEL = PREFIX + "events"

# Message path (buffer.py, delivery.py, signals.py).
PENDING_KEY = PREFIX + "pending"
"""Set of tenant ids with buffered updates."""
WORK_CHANNEL = PREFIX + "work"
"""``"{origin} {tenant_id}"``: a tenant has work another replica should deliver."""

# Leader election (leader.py, Redis lease backend).
LEADER_KEY = PREFIX + "leader"

# Admin access (admin/tokens.py, admin/audit.py).
ADMIN_TOKENS_KEY = PREFIX + "admin-tokens"
"""Hash: named admin token → its record (JSON with the SHA-256 of the secret, never the secret)."""
ADMIN_TOKEN_DIGESTS_KEY = PREFIX + "admin-token-digests"
"""Hash: SHA-256 of a named token's secret → its name (the lookup on every admin request)."""
REVOKED_BOOTSTRAP_KEY = PREFIX + "admin-token-revoked"
"""Set: SHA-256 digests of revoked configured (``admin``) tokens."""
AUDIT_STREAM = PREFIX + "audit"
"""The admin audit log (a Redis Stream, trimmed by count and age); not per tenant, so it
outlives a deleted tenant."""


def _tenant_key(kind: str) -> Callable[[str], str]:
    def key(tenant_id: str) -> str:
        return f"{PREFIX}{kind}:{tenant_id}"

    key.__name__ = f"{kind}_key"
    return key


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
    """A lock or lease taken with Coordination.acquire_lock (wake locks, delivery leases)."""
    return f"{PREFIX}lock:{name}"


def seen_key(tenant_id: str, update_id: int) -> str:
    """Dedupe marker of one update_id (Telegram retries)."""
    return f"{PREFIX}seen:{tenant_id}:{update_id}"


def seen_pattern(tenant_id: str) -> str:
    """SCAN pattern of all of a tenant's dedupe markers (tenant ids hold no glob characters;
    the ':' after the id keeps ``alpha`` from matching ``alpha-2``)."""
    return f"{PREFIX}seen:{tenant_id}:*"


def delivery_lease_name(tenant_id: str) -> str:
    """Name of a tenant's delivery lease for Coordination's lock functions."""
    return f"delivery:{tenant_id}"


# Fleet image rollouts (daemon/lifecycle/rollout.py).
ROLLOUT_KEY = PREFIX + "rollout"
"""The current (or last) rollout: one JSON document, written compare-and-set."""


def rollout_moved_key(rollout_id: str) -> str:
    """Hash of the tenants a rollout moved → the image each had before ("" = default)."""
    return f"{PREFIX}rollout:{rollout_id}:moved"


def rollout_health_key(rollout_id: str, wave: int) -> str:
    """Hash of a wave's health counters, ``{new|old}:{field}``."""
    return f"{PREFIX}rollout:{rollout_id}:health:{wave}"


def poll_lease_name(tenant_id: str) -> str:
    """Name of a tenant's long-polling lease (one ``getUpdates`` consumer across replicas)."""
    return f"poll:{tenant_id}"
