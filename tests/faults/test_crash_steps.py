"""The daemon SIGKILLed at every step of a wake and of a sleep (``OTM_TEST_CRASH_AT``):
the next daemon never saves a run dir that was not fully restored, the latest snapshot
always holds the last completed turn (the stand-in's persisted turn counter), and no agent
process outlives the next graceful stop."""

from __future__ import annotations

import pytest

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon, agent_update_log
from tests.faults.crash_support import (
    SLEEP_STEPS,
    WAKE_STEPS,
    agent_processes,
    crash_env,
    kill_processes,
    stop_gracefully,
    wait_crashed,
)
from tests.faults.support import echoes
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

TENANT = "crashy"
TOKEN = "77:crash"
CHAT = 5
REPLY_TIMEOUT = 45.0


async def _answered(telegram: FakeTelegram, expected: str) -> None:
    async def seen() -> bool:
        return expected in echoes(telegram, TOKEN, CHAT)

    await eventually(seen, REPLY_TIMEOUT, f"the agent's answer {expected!r}")


async def _sleep(daemon: Daemon) -> None:
    status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
    assert status == 200, body


@pytest.mark.parametrize("step", [*WAKE_STEPS, *SLEEP_STEPS])
async def test_daemon_killed_at_each_step_loses_no_turn_and_leaks_no_agent(
    step: str, start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    # A first turn, saved by a sleep: the snapshot holds turn #1.
    first = await start_daemon()
    secret = await first.create_tenant(TENANT, TOKEN)
    await first.send_text(TENANT, secret, 1, CHAT, "one")
    await _answered(telegram, "echo: one (#1)")
    await _sleep(first)
    await stop_gracefully(first)
    await first.stop()

    crashing = await start_daemon(**crash_env(step))
    try:
        await crashing.send_text(TENANT, secret, 2, CHAT, "two")  # buffered, then a wake
        if step in SLEEP_STEPS:
            await _answered(telegram, "echo: two (#2)")
            with pytest.raises(Exception):  # noqa: B017 - the daemon dies mid-request
                await crashing.api("POST", f"/v1/tenants/{TENANT}/sleep")
        await wait_crashed(crashing)
    finally:
        await crashing.kill()

    # The next daemon finds what the crash left: a half-made run dir, an orphaned
    # agent, an unsaved or saved-but-kept state dir.
    survivor = await start_daemon()
    if step in WAKE_STEPS:
        await _answered(telegram, "echo: two (#2)")  # the buffered update, on restored state
    await survivor.send_text(TENANT, secret, 3, CHAT, "three")
    await _answered(telegram, "echo: three (#3)")
    await _sleep(survivor)
    await stop_gracefully(survivor)
    leaked = agent_processes(survivor.data_dir)
    kill_processes(leaked)
    assert leaked == [], f"agent processes left after a crash at {step}"
    # The latest snapshot holds every completed turn, in order.
    assert agent_update_log(survivor.data_dir, TENANT) == [1, 2, 3]
    await survivor.stop()


async def test_tenants_whose_agents_died_with_the_daemon_are_reset_at_start_up(
    start_daemon: DaemonFactory,
) -> None:
    daemon = await start_daemon()
    await daemon.create_tenant(TENANT, TOKEN)
    status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/wake?wait=true")
    assert status == 200 and body["status"] == "running", body
    await daemon.kill()  # its agent is ended by the next daemon

    restarted = await start_daemon()

    async def reset() -> bool:
        return (await restarted.tenant(TENANT))["status"] == "idle"

    await eventually(reset, 20, "the running tenant without an agent reset to idle")
    tenant = await restarted.tenant(TENANT)
    assert tenant["endpoint"] is None and tenant["pod_name"] is None
    assert "agent lost" in tenant["status_reason"]
    assert agent_processes(restarted.data_dir) == []
