"""Every Redis key and channel name the daemon uses, in one place.

All live under ``otm:`` so a shared Redis can hold other data too, and a
``SCAN otm:*`` shows everything otm keeps.
"""

from __future__ import annotations

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


def endpoint_key(tenant_id: str) -> str:
    return f"{PREFIX}endpoint:{tenant_id}"


def lock_key(name: str) -> str:
    """A lock or lease taken with Coordination.acquire_lock (wake locks, delivery leases)."""
    return f"{PREFIX}lock:{name}"


def event_log_key(tenant_id: str) -> str:
    return f"{PREFIX}events:{tenant_id}"


def buffer_key(tenant_id: str) -> str:
    """The tenant's durable update buffer (a Redis Stream)."""
    return f"{PREFIX}buf:{tenant_id}"


def seen_key(tenant_id: str, update_id: int) -> str:
    """Dedupe marker of one update_id (Telegram retries)."""
    return f"{PREFIX}seen:{tenant_id}:{update_id}"


def tries_key(tenant_id: str) -> str:
    return f"{PREFIX}tries:{tenant_id}"


def dead_key(tenant_id: str) -> str:
    """Dead-lettered updates of a tenant (a Redis Stream)."""
    return f"{PREFIX}dead:{tenant_id}"


def delivery_lease_name(tenant_id: str) -> str:
    """Name of a tenant's delivery lease for Coordination's lock functions."""
    return f"delivery:{tenant_id}"


def crashes_key(tenant_id: str) -> str:
    """Agent losses within the reconciler's crash window."""
    return f"{PREFIX}crashes:{tenant_id}"


def simulated_update_key(tenant_id: str) -> str:
    """Counter of the admin API's simulated update ids."""
    return f"{PREFIX}simulated:{tenant_id}"
