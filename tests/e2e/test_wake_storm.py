"""A storm: many sleeping tenants messaged at once; wakes respect the cluster-wide cap
(live config ``max_concurrent_wakes``), queue in order, and no message is lost.

Concurrency is observed independently of the admission code: the daemon's own tenant events
(``waking`` when a boot begins, ``running`` when the agent is ready) on Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis

from daemon.coordination import EVENTS_CHANNEL
from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from tests.support.daemon_fixtures import DaemonFactory

TENANTS = 16
CAP = 3
TIMEOUT = 120.0


async def test_wake_storm_respects_the_cap_and_loses_nothing(
    start_daemon: DaemonFactory, telegram: FakeTelegram, redis_url: str
) -> None:
    daemon = await start_daemon(OTM_AGENT_BOOT_DELAY_S="0.4")
    status, body = await daemon.api("PATCH", "/v1/config", json={"max_concurrent_wakes": CAP})
    assert status == 200 and body["max_concurrent_wakes"] == CAP, body
    secrets = {}
    for n in range(TENANTS):
        secrets[f"storm{n}"] = await daemon.create_tenant(f"storm{n}", f"50{n:02d}:storm{n}")

    redis = aioredis.Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(EVENTS_CHANNEL)
    booting: set[str] = set()
    peak = 0
    woken: set[str] = set()
    queue_seen: list[int] = []
    in_progress_seen: list[int] = []
    trace: list[tuple[str, str]] = []

    async def sample_queue() -> None:
        while True:
            status, queue = await daemon.api("GET", "/v1/wake-queue")
            assert status == 200 and queue["cap"] == CAP
            queue_seen.append(len(queue["queued"]))
            in_progress_seen.append(len(queue["in_progress"]))
            await asyncio.sleep(0.05)

    async def observe() -> None:
        nonlocal peak
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            event: dict[str, Any] = json.loads(message["data"])
            trace.append((event["kind"], event["tenant_id"]))
            if event["kind"] == "waking":
                booting.add(event["tenant_id"])
                peak = max(peak, len(booting))
            elif event["kind"] == "running":
                booting.discard(event["tenant_id"])
                woken.add(event["tenant_id"])
            elif event["kind"] in ("wake_failed", "failed"):
                # A failed boot gives its slot back too (the event precedes the release);
                # its retry is a new wake. On a loaded machine a boot can fail and retry.
                booting.discard(event["tenant_id"])

    observer = asyncio.create_task(observe())
    sampler = asyncio.create_task(sample_queue())
    try:
        # Two messages per tenant (in order), all tenants at once.
        async def send_two(tenant: str, secret: str) -> None:
            for u in (1, 2):
                await daemon.send_text(tenant, secret, u, 9, f"{tenant}-m{u}")

        await asyncio.gather(*(send_two(t, s) for t, s in secrets.items()))
        for n in range(TENANTS):
            tenant = f"storm{n}"
            sent = await telegram.wait_for_messages(f"50{n:02d}:{tenant}", 2, TIMEOUT, chat_id=9)
            async with asyncio.timeout(TIMEOUT):
                while len([m for m in sent if m.text != STARTING_NOTICE]) < 2:
                    sent = await telegram.wait_for_messages(
                        f"50{n:02d}:{tenant}", len(sent) + 1, TIMEOUT, chat_id=9
                    )
            echoes = [m.text for m in sent if m.text != STARTING_NOTICE]
            assert echoes == [f"echo: {tenant}-m1 (#1)", f"echo: {tenant}-m2 (#2)"]
    finally:
        observer.cancel()
        sampler.cancel()
        await asyncio.gather(observer, sampler, return_exceptions=True)
        await pubsub.aclose()
        await redis.aclose()
    assert woken == set(secrets)
    assert 1 <= peak <= CAP, trace
    assert max(queue_seen) > 0  # the storm did queue, visibly
    assert max(in_progress_seen) <= CAP
    status, metrics = await daemon.api("GET", "/metrics")
    assert "otm_wake_queue_length 0.0" in metrics
    assert f"otm_wake_admission_cap {float(CAP)}" in metrics
