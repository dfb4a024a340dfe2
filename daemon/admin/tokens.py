"""Named admin tokens: the configured one (named ``admin``) plus any number created with
``otm token create NAME``, each revocable.

Named tokens live in Redis, which every replica shares (AOF-durable in this system), as the
SHA-256 of their secret only: the secret is shown once, at creation. Every admin request
looks its token up there, so a revocation is refused by every replica at once (no cache).
The configured token is compared in constant time; revoking it stores its digest, so a new
configured secret (``admin_token`` or a fresh ``data_dir/admin-token``) works again. While
Redis cannot be reached the configured token still works (operators need ``otm status`` in
a Redis outage) unless this replica last saw it revoked; named tokens are then refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from daemon.model import new_secret, utcnow
from daemon.redis_keys import ADMIN_TOKEN_DIGESTS_KEY, ADMIN_TOKENS_KEY, REVOKED_BOOTSTRAP_KEY

log = logging.getLogger(__name__)

BOOTSTRAP_NAME = "admin"
"""The configured token's name (``admin_token`` / ``data_dir/admin-token``)."""
TOKEN_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

# Name and digest are written (and removed) together: a token is never half there.
_CREATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
_REVOKE = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
redis.call('HDEL', KEYS[2], cjson.decode(record)['sha256'])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


class TokenExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"admin token {name!r} already exists")


class TokenNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"admin token {name!r} not found")


def validate_token_name(name: object) -> str:
    if not isinstance(name, str) or not TOKEN_NAME_RE.fullmatch(name):
        raise ValueError(
            "token name: 1-32 lowercase letters, digits and '-', starting and ending with "
            "a letter or digit"
        )
    return name


def digest(secret: str) -> str:
    """SHA-256 of a secret: enough for 256-bit random tokens (nothing to brute-force)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: str | None
    created_by: str
    revoked: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "revoked": self.revoked,
        }


class AdminTokens:
    def __init__(self, redis: aioredis.Redis, *, bootstrap_secret: str) -> None:
        self.redis = redis
        self._bootstrap = bootstrap_secret.encode()
        self._bootstrap_digest = digest(bootstrap_secret)
        self._bootstrap_revoked = False
        """What Redis last said about the configured token (used while it cannot answer)."""

    async def authenticate(self, secret: str) -> str | None:
        """The name of the token ``secret`` is, or None (unknown or revoked). Redis errors
        propagate: the caller refuses the request rather than guess."""
        if hmac.compare_digest(secret.encode(), self._bootstrap):
            try:
                self._bootstrap_revoked = bool(
                    await self.redis.sismember(REVOKED_BOOTSTRAP_KEY, self._bootstrap_digest)
                )
            except (RedisError, OSError) as exc:
                log.warning("admin token check without Redis (%s): last known state used", exc)
            return None if self._bootstrap_revoked else BOOTSTRAP_NAME
        name = await self.redis.hget(ADMIN_TOKEN_DIGESTS_KEY, digest(secret))
        return None if name is None else _text(name)

    async def create(self, name: str, *, created_by: str) -> tuple[TokenInfo, str]:
        """A new token and its secret (the only time the secret exists outside its holder)."""
        validate_token_name(name)
        if name == BOOTSTRAP_NAME:
            raise TokenExists(name)
        secret = new_secret()
        info = TokenInfo(name=name, created_at=utcnow().isoformat(), created_by=created_by)
        record = json.dumps(
            {"sha256": digest(secret), "created_at": info.created_at, "created_by": created_by}
        )
        created = await self.redis.eval(
            _CREATE, 2, ADMIN_TOKENS_KEY, ADMIN_TOKEN_DIGESTS_KEY, name, digest(secret), record
        )
        if not created:
            raise TokenExists(name)
        return info, secret

    async def revoke(self, name: str) -> None:
        validate_token_name(name)
        if name == BOOTSTRAP_NAME:
            added = await self.redis.sadd(REVOKED_BOOTSTRAP_KEY, self._bootstrap_digest)
            if not added:
                raise TokenNotFound(name)
            return
        removed = await self.redis.eval(_REVOKE, 2, ADMIN_TOKENS_KEY, ADMIN_TOKEN_DIGESTS_KEY, name)
        if not removed:
            raise TokenNotFound(name)

    async def list(self) -> list[TokenInfo]:
        """The configured token first (``revoked`` when it is), then the named ones by name."""
        revoked = bool(await self.redis.sismember(REVOKED_BOOTSTRAP_KEY, self._bootstrap_digest))
        out = [TokenInfo(BOOTSTRAP_NAME, None, "configuration", revoked=revoked)]
        records = await self.redis.hgetall(ADMIN_TOKENS_KEY)
        for raw_name, raw in sorted(records.items()):
            record = json.loads(raw)
            out.append(TokenInfo(_text(raw_name), record["created_at"], record["created_by"]))
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
