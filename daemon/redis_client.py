"""The daemon's Redis client: one shared client, standalone or Redis Cluster.

Every caller types it as ``redis.asyncio.Redis``: the cluster client answers the same
commands (scripts, pipelines, pub/sub) and routes each by its key's slot; the key layout
(daemon/redis_keys.py) keeps every script and MULTI within one slot.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

MAX_CONNECTIONS = 512
POOL_TIMEOUT_S = 5.0
"""How long a command waits for a pooled connection before it fails."""


def connect(url: str, *, cluster: bool, credentials: dict[str, str]) -> aioredis.Redis:
    """A client for ``url`` (credentials in the URL win over ``credentials``, as in
    redis-py's from_url)."""
    options: dict[str, Any] = {
        "health_check_interval": 10,
        "socket_keepalive": True,
        **credentials,
    }
    if cluster:
        # Follows MOVED/ASK redirects and re-reads the slot map after a failover; pub/sub
        # goes through one node (PUBLISH reaches every node's subscribers). Connections are
        # per node, at most MAX_CONNECTIONS each.
        client = RedisCluster.from_url(url, max_connections=MAX_CONNECTIONS, **options)
        return cast(aioredis.Redis, client)
    # A blocking pool: a burst beyond the pool size waits for a free connection instead
    # of failing (redis-py's default pool raises MaxConnectionsError past 100 connections,
    # which turned 100 concurrent webhooks into 503s). Pub/sub listeners (signals, culler,
    # admin watchers) hold a connection each.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT_S, **options
    )
    return aioredis.Redis.from_pool(pool)
