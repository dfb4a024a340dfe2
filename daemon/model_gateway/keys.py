"""Per-tenant model keys: minted at tenant create, rotated on demand, revoked on delete/suspend.

A key is ``otm-mk-<tenant>.<key_id>.<mac>`` where ``mac`` is HMAC-SHA256 of
``<tenant>.<key_id>`` under the daemon's ``model_key_secret``. The registry stores only
``model_key_id`` (random, not a credential): the daemon re-derives the key when it renders an
agent's config at each wake (it must hand the agent its key again after every sleep), and a
registry dump yields no usable key. Rotation is a new ``model_key_id`` (the old key stops
matching at once); an empty id (or a suspended/deleted tenant) matches nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from daemon.model import TENANT_ID_RE

KEY_PREFIX = "otm-mk-"
_MAC_HEX = 48


def new_key_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class ParsedKey:
    tenant_id: str
    key_id: str
    mac: str


class ModelKeys:
    """Derives and checks tenant keys with one secret shared by every replica."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("model_key_secret must be at least 16 characters")
        self._secret = secret.encode()

    def _mac(self, tenant_id: str, key_id: str) -> str:
        digest = hmac.new(self._secret, f"{tenant_id}.{key_id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:_MAC_HEX]

    def key_for(self, tenant_id: str, key_id: str) -> str:
        """The key an agent is given; empty when the tenant has no key (revoked)."""
        if not key_id:
            return ""
        return f"{KEY_PREFIX}{tenant_id}.{key_id}.{self._mac(tenant_id, key_id)}"

    @staticmethod
    def parse(key: str) -> ParsedKey | None:
        if not key.startswith(KEY_PREFIX):
            return None
        parts = key[len(KEY_PREFIX) :].split(".")
        if len(parts) != 3 or not TENANT_ID_RE.fullmatch(parts[0]) or not parts[1]:
            return None
        return ParsedKey(*parts)

    def matches(self, parsed: ParsedKey, current_key_id: str) -> bool:
        """The key is the tenant's current one (constant-time compares)."""
        if not current_key_id:
            return False
        same_id = hmac.compare_digest(parsed.key_id.encode(), current_key_id.encode())
        good_mac = hmac.compare_digest(
            parsed.mac.encode(), self._mac(parsed.tenant_id, current_key_id).encode()
        )
        return same_id and good_mac


SECRET_REDIS_KEY = "otm:model-key-secret"


async def shared_key_secret(configured: str | None, redis: aioredis.Redis) -> str:
    """The configured secret, or the one every replica shares through Redis (the first
    replica to start creates it; SET NX, so replicas never disagree)."""
    if configured:
        return configured
    await redis.set(SECRET_REDIS_KEY, secrets.token_hex(32), nx=True)
    value = await redis.get(SECRET_REDIS_KEY)
    if value is None:
        raise RuntimeError("the model key secret vanished from Redis")
    return value.decode() if isinstance(value, bytes) else str(value)
