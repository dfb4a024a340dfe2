"""Warm wakes through a real daemon (local runtime, stand-in agents): a message to a sleeping
tenant is answered by a pre-booted gateway bound at claim, without the starting-up notice,
its state carried across sleep; the pool refills, shrinks with its target, and a cold start
(pool empty) still gets the notice. ``otm status`` shows ready/booting/target."""

from __future__ import annotations

import re

from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, replies
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

REPLY_TIMEOUT = 20.0
BOT = "1707:warm"
CHAT = 5


async def _pool(daemon: Daemon) -> dict[str, int]:
    status, body = await daemon.api("GET", "/v1/status")
    assert status == 200, body
    return dict(body["warm_pool"])


async def _wait_pool(daemon: Daemon, ready: int) -> None:
    async def settled() -> bool:
        pool = await _pool(daemon)
        return pool["ready"] == ready and pool["booting"] == 0

    await eventually(settled, REPLY_TIMEOUT, f"{ready} warm gateway(s) ready")


async def _wait_echoes(telegram: FakeTelegram, count: int) -> None:
    """Until the agent's ``count``-th reply (a notice alone does not end the wait)."""

    async def answered() -> bool:
        return sum(1 for t in replies(telegram, BOT, CHAT) if t.startswith("echo:")) >= count

    await eventually(answered, REPLY_TIMEOUT, f"{count} agent replies")


async def _metric(daemon: Daemon, phase: str, path: str) -> float:
    status, text = await daemon.api("GET", "/metrics")
    assert status == 200
    pattern = (
        rf'^otm_agent_start_phase_seconds_count\{{path="{path}",phase="{phase}"\}} ([0-9.e+]+)$'
    )
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_sleeping_tenant_is_answered_by_a_bound_warm_gateway(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    # No starting-up notice on a warm wake: judged by the rule (a warm start waits before
    # noticing), not by this machine's speed, so the threshold is far above any bind here.
    daemon = await start_daemon(OTM_WARM_POOL_REFILL_PAUSE_S="0", OTM_WARM_NOTICE_AFTER_S="60")
    status, _ = await daemon.api("PATCH", "/v1/config", json={"warm_pool_target": 1})
    assert status == 200
    await _wait_pool(daemon, ready=1)
    assert (await _pool(daemon))["target"] == 1
    secret = await daemon.create_tenant("warmy", BOT)

    # First message: bound to the pre-booted gateway, no notice.
    await daemon.send_text("warmy", secret, 1, CHAT, "a")
    await _wait_echoes(telegram, 1)
    assert replies(telegram, BOT, CHAT) == ["echo: a (#1)"]  # no starting-up notice
    tenant = await daemon.tenant("warmy")
    assert str(tenant["pod_name"]).startswith("warm-")
    first_gateway = tenant["pod_name"]

    # Sleep, the pool refills; the next message is bound to another warm gateway and the
    # agent's state (its turn counter) came along.
    status, body = await daemon.api("POST", "/v1/tenants/warmy/sleep")
    assert status == 200 and body["status"] == "idle"
    await _wait_pool(daemon, ready=1)
    await daemon.send_text("warmy", secret, 2, CHAT, "b")
    await _wait_echoes(telegram, 2)
    tenant = await daemon.tenant("warmy")
    assert str(tenant["pod_name"]).startswith("warm-") and tenant["pod_name"] != first_gateway
    assert replies(telegram, BOT, CHAT) == ["echo: a (#1)", "echo: b (#2)"]
    for phase in ("claim", "restore", "config_write", "channel_up"):
        assert await _metric(daemon, phase, "warm") == 2, phase

    # Target 0: the spare gateway is stopped; the next wake is cold and gets the notice.
    await _wait_pool(daemon, ready=1)
    status, _ = await daemon.api("PATCH", "/v1/config", json={"warm_pool_target": 0})
    assert status == 200
    await _wait_pool(daemon, ready=0)
    status, _ = await daemon.api("POST", "/v1/tenants/warmy/sleep")
    assert status == 200
    await daemon.send_text("warmy", secret, 3, CHAT, "c")
    await _wait_echoes(telegram, 3)
    assert replies(telegram, BOT, CHAT) == [
        "echo: a (#1)",
        "echo: b (#2)",
        STARTING_NOTICE,
        "echo: c (#3)",
    ]
    assert not str((await daemon.tenant("warmy"))["pod_name"]).startswith("warm-")
    assert await _metric(daemon, "channel_up", "cold") == 1
