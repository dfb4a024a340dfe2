"""A Redis Cluster failover under a stream of updates: the replica of the master that holds
the tenant's slot takes over (``CLUSTER FAILOVER``) mid-stream; every update reaches the agent
exactly once and in order (the agent's own update log)."""

from __future__ import annotations

import asyncio

import pytest

from daemon.msgpath.wake import STARTING_NOTICE
from daemon.redis_keys import buffer_key
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import Daemon, agent_update_log, replies
from tests.support.polling import eventually
from tests.support.redis_cluster import RedisClusterProcs

pytestmark = pytest.mark.redis_cluster

REPLY_TIMEOUT = 60.0
FAILOVER_AT = 20
AFTER_FAILOVER = 20
"""Updates sent after the replica was seen as master (the stream spans the whole failover)."""
MAX_UPDATES = 2000
POST_ATTEMPTS = 100


@pytest.fixture
def redis_backend() -> str:
    return "cluster"


async def post_until_accepted(daemon: Daemon, secret: str, update_id: int) -> None:
    """What Telegram does: re-send an update until the webhook answers 200 (a 503 while the
    cluster fails over is fine; losing or duplicating the update is not)."""
    for _ in range(POST_ATTEMPTS):
        update = make_text_update(update_id, 31, f"f{update_id}")
        if await daemon.post_update("stream", secret, update) == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"update {update_id} never accepted")


def role(cluster: RedisClusterProcs, port: int) -> str:
    client = cluster.node(port)
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


async def test_failover_of_the_tenants_master_loses_and_duplicates_nothing(
    daemon: Daemon, telegram: FakeTelegram, redis_cluster: RedisClusterProcs
) -> None:
    secret = await daemon.create_tenant("stream", "1401:stream")
    master, replica = redis_cluster.replica_of_slot_owner(buffer_key("stream"))
    sent, switched_at = 0, None
    while switched_at is None or sent < switched_at + AFTER_FAILOVER:
        sent += 1
        assert sent <= MAX_UPDATES, "the replica never took over"
        await post_until_accepted(daemon, secret, sent)
        if sent == FAILOVER_AT:
            node = redis_cluster.node(replica)
            try:
                assert node.execute_command("CLUSTER FAILOVER")
            finally:
                node.close()
        if sent > FAILOVER_AT and switched_at is None and role(redis_cluster, replica) == "master":
            switched_at = sent
    assert role(redis_cluster, master) == "slave"
    assert switched_at is not None
    updates = sent

    def answered() -> list[str]:
        return [t for t in replies(telegram, "1401:stream", 31) if t != STARTING_NOTICE]

    await eventually(lambda: len(answered()) >= updates, REPLY_TIMEOUT, "every reply")
    status, _ = await daemon.api("POST", "/v1/tenants/stream/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "stream") == list(range(1, updates + 1))
    assert answered() == [f"echo: f{n} (#{n})" for n in range(1, updates + 1)]
    redis_cluster.wait_ok()
