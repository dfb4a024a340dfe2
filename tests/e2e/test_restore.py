"""Point-in-time restore through a real daemon and stand-in agents, on the directory store
and on S3 (moto): an older snapshot's agent state comes back (the stand-in's persisted turn
counter shows in its echo replies), an unknown snapshot is a 404 that leaves the tenant
alone, and a message that arrives while the restore runs waits in the buffer and is
answered by the agent on the restored state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, replies
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

REPLY_TIMEOUT = 30.0
CHAT = 9
BOT = "7001:pitr"


@pytest.fixture(params=["dir", "s3"])
async def store_daemon(request: pytest.FixtureRequest, start_daemon: DaemonFactory) -> Daemon:
    if request.param == "s3":
        moto_url = request.getfixturevalue("moto_url")
        return await start_daemon(
            OTM_STATE_STORE="s3", OTM_S3_ENDPOINT_URL=moto_url, OTM_S3_BUCKET="restore-e2e"
        )
    return await start_daemon()


def echoes(telegram: FakeTelegram, token: str) -> list[str]:
    return [t for t in replies(telegram, token, CHAT) if t != STARTING_NOTICE]


async def converse(
    daemon: Daemon, telegram: FakeTelegram, tenant: str, secret: str, update_id: int, text: str
) -> str:
    before = len(echoes(telegram, BOT))
    await daemon.send_text(tenant, secret, update_id, CHAT, text)
    await eventually(lambda: len(echoes(telegram, BOT)) > before, REPLY_TIMEOUT, f"reply to {text}")
    return echoes(telegram, BOT)[-1]


async def pitr_after_one_turn(daemon: Daemon, telegram: FakeTelegram, text: str) -> str:
    """Register tenant pitr and have its agent answer ``text`` (turn #1); its secret."""
    secret = await daemon.create_tenant("pitr", BOT)
    assert await converse(daemon, telegram, "pitr", secret, 1, text) == f"echo: {text} (#1)"
    return secret


async def sleep(daemon: Daemon, tenant: str) -> None:
    status, body = await daemon.api("POST", f"/v1/tenants/{tenant}/sleep")
    assert status == 200, body


async def snapshots(daemon: Daemon, tenant: str) -> list[dict[str, Any]]:
    status, body = await daemon.api("GET", f"/v1/tenants/{tenant}/snapshots")
    assert status == 200, body
    return list(body["items"])


async def test_restore_brings_an_older_agent_state_back(
    store_daemon: Daemon, telegram: FakeTelegram
) -> None:
    daemon = store_daemon
    secret = await pitr_after_one_turn(daemon, telegram, "first")
    await sleep(daemon, "pitr")
    [after_one] = await snapshots(daemon, "pitr")
    assert after_one["trigger"] == "sleep" and after_one["size"] > 0
    assert await converse(daemon, telegram, "pitr", secret, 2, "second") == "echo: second (#2)"
    assert await converse(daemon, telegram, "pitr", secret, 3, "third") == "echo: third (#3)"
    await sleep(daemon, "pitr")
    assert len(await snapshots(daemon, "pitr")) == 2

    # Unknown snapshot, or a time before any: 404, and the tenant is left as it was.
    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"snapshot": "snapshots/history/nope.tar.gz"}
    )
    assert status == 404, body
    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"at": "2000-01-01T00:00:00Z"}
    )
    assert status == 404, body
    status, body = await daemon.api("POST", "/v1/tenants/pitr/restore", json={})
    assert status == 400, body
    assert len(await snapshots(daemon, "pitr")) == 2

    # Back to the state after the first turn: its counter (1) comes back.
    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"snapshot": after_one["key"]}
    )
    assert status == 200, body
    assert body["restored"]["key"] == after_one["key"]
    assert body["tenant"]["status"] == "running"
    assert await converse(daemon, telegram, "pitr", secret, 4, "again") == "echo: again (#2)"
    history = await snapshots(daemon, "pitr")
    assert [s["trigger"] for s in history] == ["restore", "sleep", "sleep"]

    # By time: the newest at or before the second sleep's snapshot is that one (#3).
    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"at": history[1]["taken_at"]}
    )
    assert status == 200, body
    assert body["restored"]["key"] == history[1]["key"]
    assert await converse(daemon, telegram, "pitr", secret, 5, "later") == "echo: later (#4)"


async def test_a_message_arriving_during_a_restore_waits_and_is_answered_once(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    # A slow boot keeps the tenant away from "running" long enough to post during the restore.
    daemon = await start_daemon(OTM_AGENT_BOOT_DELAY_S="1.5")
    secret = await pitr_after_one_turn(daemon, telegram, "one")
    await sleep(daemon, "pitr")
    [first] = await snapshots(daemon, "pitr")
    assert await converse(daemon, telegram, "pitr", secret, 2, "two") == "echo: two (#2)"

    restore = asyncio.create_task(
        daemon.api("POST", "/v1/tenants/pitr/restore", json={"snapshot": first["key"]})
    )

    async def not_running() -> bool:
        return bool((await daemon.tenant("pitr"))["status"] != "running")

    await eventually(not_running, REPLY_TIMEOUT, "the restore to put the tenant to sleep")
    await daemon.send_text("pitr", secret, 3, CHAT, "during")
    status, body = await restore
    assert status == 200, body
    await eventually(lambda: len(echoes(telegram, BOT)) == 3, REPLY_TIMEOUT, "the held reply")
    # Answered by the agent on the restored state (its counter was 1), exactly once.
    assert echoes(telegram, BOT) == ["echo: one (#1)", "echo: two (#2)", "echo: during (#2)"]
    status, buffer = await daemon.api("GET", "/v1/tenants/pitr/buffer")
    assert (status, buffer) == (200, {"pending": 0, "dead_letters": 0})


async def test_a_running_agent_gets_periodic_snapshots_to_restore_from(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon(OTM_SNAPSHOT_INTERVAL_S="1")
    secret = await pitr_after_one_turn(daemon, telegram, "one")
    assert await converse(daemon, telegram, "pitr", secret, 2, "two") == "echo: two (#2)"
    latest = daemon.data_dir / "state" / "tenants" / "pitr" / "snapshots" / "latest.tar.gz"
    assert not latest.exists()  # never slept: the running agent's snapshots are history only

    async def periodic_after_two() -> dict[str, Any] | None:
        for item in await snapshots(daemon, "pitr"):
            taken_at = datetime.fromisoformat(item["taken_at"])
            if item["trigger"] == "periodic" and taken_at > replied:
                return item
        return None

    replied = datetime.now(UTC)  # the turn that made the counter 2 is over
    await eventually(periodic_after_two, REPLY_TIMEOUT, "a periodic snapshot")
    taken = await periodic_after_two()
    assert taken is not None and not latest.exists()
    assert await converse(daemon, telegram, "pitr", secret, 3, "three") == "echo: three (#3)"
    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"snapshot": taken["key"]}
    )
    assert status == 200, body
    assert await converse(daemon, telegram, "pitr", secret, 4, "back") == "echo: back (#3)"
