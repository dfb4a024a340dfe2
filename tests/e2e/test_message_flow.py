"""End to end: Telegram (fake) → router → buffer → delivery → agent (stand-in process) → reply.

Every test runs a real daemon process with its own data dir on the session
Redis; agents are real processes started by the daemon's local runtime.
"""

from __future__ import annotations

import asyncio

from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, agent_update_log, replies
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually
from tests.support.redis_cluster import BACKENDS

REPLY_TIMEOUT = 30.0
# Every test on the standalone Redis and on a Redis Cluster (OTM_REDIS_CLUSTER=true).
REDIS_BACKENDS = BACKENDS


def echoes(texts: list[str]) -> list[str]:
    return [t for t in texts if t != STARTING_NOTICE]


async def test_cold_wake_replies_once_with_one_starting_notice(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("cold", "1001:cold")
    assert (await daemon.tenant("cold"))["status"] == "idle"
    # Three messages while the tenant sleeps: one wake, one notice, three replies in order.
    for n in range(1, 4):
        await daemon.send_text("cold", secret, n, 42, f"m{n}")
    sent = await telegram.wait_for_messages("1001:cold", 4, REPLY_TIMEOUT, chat_id=42)
    texts = [m.text for m in sent]
    assert texts.count(STARTING_NOTICE) == 1
    assert echoes(texts) == ["echo: m1 (#1)", "echo: m2 (#2)", "echo: m3 (#3)"]
    tenant = await daemon.tenant("cold")
    assert tenant["status"] == "running"
    assert tenant["endpoint"].startswith("http://127.0.0.1:")

    # Hot path: no wake, no second notice.
    await daemon.send_text("cold", secret, 4, 42, "hot")
    sent = await telegram.wait_for_messages("1001:cold", 5, REPLY_TIMEOUT, chat_id=42)
    assert sent[-1].text == "echo: hot (#4)"
    assert [m.text for m in sent].count(STARTING_NOTICE) == 1
    status, buffer = await daemon.api("GET", "/v1/tenants/cold/buffer")
    assert (status, buffer) == (200, {"pending": 0, "dead_letters": 0})
    status, metrics = await daemon.api("GET", "/metrics")
    assert 'otm_wake_phase_seconds_count{phase="first_delivery"} 1.0' in metrics
    assert "otm_deliveries_total 4.0" in metrics


async def test_three_tenants_concurrently(daemon: Daemon, telegram: FakeTelegram) -> None:
    tenants = {f"c{i}": f"20{i}:tok" for i in range(3)}
    secrets = {t: await daemon.create_tenant(t, token) for t, token in tenants.items()}

    async def converse(tenant_id: str) -> None:
        for n in range(1, 6):
            await daemon.send_text(tenant_id, secrets[tenant_id], n, 7, f"{tenant_id}-{n}")

    await asyncio.gather(*(converse(t) for t in tenants))
    for tenant_id, token in tenants.items():
        sent = await telegram.wait_for_messages(token, 6, REPLY_TIMEOUT, chat_id=7)
        assert echoes([m.text for m in sent]) == [
            f"echo: {tenant_id}-{n} (#{n})" for n in range(1, 6)
        ]


async def test_telegram_retries_are_delivered_once(daemon: Daemon, telegram: FakeTelegram) -> None:
    secret = await daemon.create_tenant("dup", "1002:dup")
    for _ in range(3):
        await daemon.send_text("dup", secret, 77, 5, "same update")
    await daemon.send_text("dup", secret, 78, 5, "next")
    sent = await telegram.wait_for_messages("1002:dup", 3, REPLY_TIMEOUT, chat_id=5)
    assert echoes([m.text for m in sent]) == ["echo: same update (#1)", "echo: next (#2)"]
    # A retry arriving after delivery is still recognised.
    await daemon.send_text("dup", secret, 77, 5, "same update")
    status, _ = await daemon.api("POST", "/v1/tenants/dup/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "dup") == [77, 78]
    assert echoes(replies(telegram, "1002:dup", 5)) == ["echo: same update (#1)", "echo: next (#2)"]


async def test_fifty_in_order_across_sleep_and_state_survives(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("order", "1003:ord")
    await daemon.send_text("order", secret, 1, 9, "first")
    await telegram.wait_for_messages("1003:ord", 2, REPLY_TIMEOUT, chat_id=9)
    sleeper: asyncio.Task[tuple[int, object]] | None = None
    for n in range(2, 51):
        await daemon.send_text("order", secret, n, 9, f"n{n}")
        if n == 25:  # the operator puts the tenant to sleep mid-stream
            sleeper = asyncio.create_task(daemon.api("POST", "/v1/tenants/order/sleep"))
    assert sleeper is not None
    status, body = await sleeper
    assert status == 200, body

    async def all_replied() -> bool:
        return len(echoes(replies(telegram, "1003:ord", 9))) >= 50

    await eventually(all_replied, REPLY_TIMEOUT, "50 replies")
    texts = echoes(replies(telegram, "1003:ord", 9))
    expected = ["echo: first (#1)"] + [f"echo: n{n} (#{n})" for n in range(2, 51)]
    # In order, each exactly once, and the counter (agent state) continued across the restart.
    assert texts == expected
    status, _ = await daemon.api("POST", "/v1/tenants/order/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "order") == list(range(1, 51))
    assert (await daemon.tenant("order"))["status"] == "idle"


async def test_counter_survives_sleep_and_wake(daemon: Daemon, telegram: FakeTelegram) -> None:
    secret = await daemon.create_tenant("count", "1004:cnt")
    await daemon.send_text("count", secret, 1, 3, "a")
    await telegram.wait_for_messages("1004:cnt", 2, REPLY_TIMEOUT, chat_id=3)
    status, body = await daemon.api("POST", "/v1/tenants/count/sleep")
    assert status == 200 and body["status"] == "idle"
    status, body = await daemon.api("POST", "/v1/tenants/count/wake?wait=true")
    assert status == 200 and body["status"] == "running"
    await daemon.send_text("count", secret, 2, 3, "b")
    sent = await telegram.wait_for_messages("1004:cnt", 3, REPLY_TIMEOUT, chat_id=3)
    # The operator's wake carried no chat: no second notice; the counter went on.
    assert [m.text for m in sent] == [STARTING_NOTICE, "echo: a (#1)", "echo: b (#2)"]
    status, logs = await daemon.api("GET", "/v1/tenants/count/logs?tail=200")
    assert status == 200
    assert "[otm] starting count-" in logs and "state restored" in logs


async def test_daemon_sigkill_loses_and_duplicates_nothing(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon()
    secret = await daemon.create_tenant("crash", "1005:crash")
    for n in range(1, 11):
        await daemon.send_text("crash", secret, n, 11, f"k{n}")
    await telegram.wait_for_messages("1005:crash", 2, REPLY_TIMEOUT, chat_id=11)
    for n in range(11, 21):
        await daemon.send_text("crash", secret, n, 11, f"k{n}")
    await daemon.kill()  # mid-stream: some delivered, some buffered, maybe one in flight

    daemon = await start_daemon()

    async def all_replied() -> bool:
        texts = echoes(replies(telegram, "1005:crash", 11))
        return all(any(t.startswith(f"echo: k{n} ") for t in texts) for n in range(1, 21))

    await eventually(all_replied, REPLY_TIMEOUT, "replies to all 20 updates")
    status, _ = await daemon.api("POST", "/v1/tenants/crash/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "crash") == list(range(1, 21))


async def test_agent_crash_mid_stream(daemon: Daemon, telegram: FakeTelegram) -> None:
    import os
    import signal

    from daemon.adapters.local.runtime import PID_FILE, recorded_agent_pid

    secret = await daemon.create_tenant("boom", "1006:boom")
    for n in range(1, 6):
        await daemon.send_text("boom", secret, n, 13, f"b{n}")
    await telegram.wait_for_messages("1006:boom", 6, REPLY_TIMEOUT, chat_id=13)
    pids = [
        recorded_agent_pid(p) for p in (daemon.data_dir / "agents" / "boom").glob(f"*/{PID_FILE}")
    ]
    live = [pid for pid in pids if pid is not None]
    assert len(live) == 1
    os.killpg(live[0], signal.SIGKILL)
    for n in range(6, 11):
        await daemon.send_text("boom", secret, n, 13, f"b{n}")

    # Each update answered, in order. (An agent killed between sending a reply and
    # recording it may answer that one update again after its restart: that is
    # the agent's own replay policy, not a second delivery — see the update log.
    # So count distinct answers: a replay must not pass for the tenth reply.)
    def first_answers() -> list[str]:
        texts = echoes(replies(telegram, "1006:boom", 13))
        return list(dict.fromkeys(t.split(" (#")[0] for t in texts))

    await eventually(lambda: len(first_answers()) >= 10, REPLY_TIMEOUT, "10 distinct replies")
    assert first_answers() == [f"echo: b{n}" for n in range(1, 11)]
    status, _ = await daemon.api("POST", "/v1/tenants/boom/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "boom") == list(range(1, 11))
