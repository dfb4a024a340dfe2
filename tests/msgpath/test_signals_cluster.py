"""The signals subscriber on a Redis Cluster: when the node it listens on dies (not a planned
failover: the process is killed), it subscribes again through a live node and events flow on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from daemon.cancellation import cancel_and_wait
from daemon.msgpath.pubsub import TenantSignals
from daemon.redis_client import connect
from daemon.redis_keys import EVENTS_CHANNEL
from tests.support.polling import eventually
from tests.support.redis_cluster import require_redis_tools, running_cluster

pytestmark = pytest.mark.redis_cluster


async def test_the_subscriber_moves_to_a_live_node_when_its_node_dies(tmp_path: Path) -> None:
    require_redis_tools()
    with running_cluster(tmp_path / "cluster") as cluster:  # its own: this test kills a node
        listening = connect(cluster.url, cluster=True, credentials={})
        signals = TenantSignals()
        events: list[str] = []
        reconnects: list[None] = []
        signals.on_event(lambda tenant_id, event: events.append(str(event["kind"])))
        signals.on_reconnect(lambda: reconnects.append(None))
        listener = asyncio.create_task(signals.listen(listening), name="signals")
        publisher = None
        try:
            async with asyncio.timeout(5):
                await signals.connected.wait()
            # The subscriber's node serves its first channel's slot (otm:events, sorted first).
            node, _ = cluster.replica_of_slot_owner(EVENTS_CHANNEL)
            index = cluster.ports.index(node)
            cluster.procs[index].kill()
            cluster.procs[index].wait(timeout=10)
            survivor = cluster.ports[(index + 1) % len(cluster.ports)]
            publisher = connect(f"redis://127.0.0.1:{survivor}", cluster=True, credentials={})

            async def delivered() -> bool:
                event = {"tenant_id": "t", "kind": "after-loss"}
                try:
                    await publisher.publish(EVENTS_CHANNEL, json.dumps(event))
                except (RedisError, OSError):
                    return False
                await asyncio.sleep(0.1)
                return "after-loss" in events

            await eventually(delivered, 30, "an event through a live node")
            assert len(reconnects) >= 2  # subscribed again: the reconnect hooks ran
        finally:
            assert not await cancel_and_wait([listener], timeout=5)
            await listening.aclose()
            if publisher is not None:
                await publisher.aclose()
