"""What the daemon and CLI tell the operator when a tenant cannot work (issue 16):
errors that no retry fixes fail the tenant at once with the reason, one starting
notice per cold start, relative agent commands work as the README writes them,
`otm chat`/`otm logs`/`otm tenant wake` say why instead of timing out or lying."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from typer.testing import CliRunner, Result

from daemon.msgpath.wake import STARTING_NOTICE
from otm.cli import app
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import ADMIN_TOKEN, Daemon
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually
from tests.support.servers import REPO_ROOT


async def _status_is(daemon: Daemon, tenant_id: str, status: str) -> bool:
    return (await daemon.tenant(tenant_id))["status"] == status


async def _otm(daemon: Daemon, telegram: FakeTelegram, *args: str) -> Result:
    env = {
        "OTM_DATA_DIR": str(daemon.data_dir),
        "OTM_ADMIN_TOKEN": ADMIN_TOKEN,
        "OTM_TELEGRAM_API_BASE": telegram.base_url,
    }
    # The CLI is synchronous; run it off the loop that serves the fake Bot API.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def _set_config(daemon: Daemon, **changes: Any) -> None:
    status, body = await daemon.api("PATCH", "/v1/config", json=changes)
    assert status == 200, body


async def test_missing_agent_command_fails_at_once_with_the_reason(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon(OTM_AGENT_COMMAND="tools/missing/node gateway")
    secret = await daemon.create_tenant("nocmd", "1601:nocmd")
    await daemon.send_text("nocmd", secret, 1, 5, "hello")
    await eventually(lambda: _status_is(daemon, "nocmd", "failed"), 30, "failed", interval=0.1)
    tenant = await daemon.tenant("nocmd")
    # One attempt, not max_wake_attempts of them: exec'ing a missing file cannot succeed.
    assert tenant["wake_attempts"] == 1
    assert "not retried" in tenant["status_reason"]
    assert "cannot start the agent command 'tools/missing/node'" in tenant["status_reason"]
    assert [m.text for m in telegram.sent("1601:nocmd", 5)].count(STARTING_NOTICE) <= 1
    # `otm logs` points at the reason (it used to say "no logs for tenant").
    logs = await _otm(daemon, telegram, "logs", "nocmd")
    assert logs.exit_code == 0, logs.output
    assert "cannot start the agent command" in logs.stdout
    # `otm chat` says the tenant failed and why, instead of waiting for a reply.
    chat = await _otm(daemon, telegram, "chat", "nocmd", "anyone?", "--timeout", "60")
    assert chat.exit_code == 1
    assert "tenant nocmd is failed" in chat.stderr
    assert "held in its buffer" in chat.stderr
    assert "cannot start the agent command" in chat.stderr


async def test_a_retried_wake_sends_one_starting_notice(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    # An agent that exits at once: every attempt fails, the tenant fails after the last.
    daemon = await start_daemon(OTM_AGENT_COMMAND=f"{sys.executable} -c 'raise SystemExit(3)'")
    await _set_config(daemon, max_wake_attempts=3)
    secret = await daemon.create_tenant("flaky", "1602:flaky")
    await daemon.send_text("flaky", secret, 1, 6, "hello")
    await eventually(lambda: _status_is(daemon, "flaky", "failed"), 60, "failed", interval=0.1)
    assert (await daemon.tenant("flaky"))["wake_attempts"] == 3
    # One cold start seen by the user: one notice, not one per retry.
    assert [m.text for m in telegram.sent("1602:flaky", 6)] == [STARTING_NOTICE]


async def test_relative_agent_command_resolves_against_the_daemon_cwd(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    # As the README writes it: a path relative to where the daemon was started
    # (the harness starts it in the repository root), while agents run in their run dir.
    python = os.path.relpath(sys.executable, REPO_ROOT)  # noqa: ASYNC240 - no I/O
    assert "/" in python
    daemon = await start_daemon(OTM_AGENT_COMMAND=f"{python} -m otm.devtools.agent_stub")
    await daemon.create_tenant("relcmd", "1603:relcmd")
    chat = await _otm(daemon, telegram, "chat", "relcmd", "hi", "--timeout", "60")
    assert chat.exit_code == 0, chat.output
    assert chat.stdout.strip() == "echo: hi (#1)"


async def test_wake_and_chat_on_a_suspended_tenant_say_so(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    await daemon.create_tenant("held", "1604:held")
    status, body = await daemon.api("POST", "/v1/tenants/held/suspend")
    assert status == 200, body
    status, body = await daemon.api("POST", "/v1/tenants/held/wake")
    assert status == 409, body
    wake = await _otm(daemon, telegram, "tenant", "wake", "held")
    assert wake.exit_code == 1
    assert wake.stdout == ""
    assert "is suspended" in wake.stderr and "otm tenant resume held" in wake.stderr
    chat = await _otm(daemon, telegram, "chat", "held", "are you there?")
    assert chat.exit_code == 1
    assert "tenant held is suspended" in chat.stderr
    assert "held in its buffer" in chat.stderr
    status, buffered = await daemon.api("GET", "/v1/tenants/held/buffer")
    assert buffered["pending"] == 1
