"""`otm chat` against a real daemon and the fake Bot API."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from daemon.msgpath.wake import STARTING_NOTICE
from otm import cmd_chat
from otm.cli import app
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import ADMIN_TOKEN, Daemon


async def test_otm_chat_prints_the_reply(daemon: Daemon, telegram: FakeTelegram) -> None:
    assert cmd_chat.STARTING_NOTICE == STARTING_NOTICE
    await daemon.create_tenant("talk", "1201:talk")
    runner = CliRunner()
    env = {
        "OTM_DATA_DIR": str(daemon.data_dir),  # daemon.json gives the admin URL
        "OTM_ADMIN_TOKEN": ADMIN_TOKEN,
        "OTM_TELEGRAM_API_BASE": telegram.base_url,
    }
    # The CLI is synchronous; run it off the loop that serves the fake Bot API.
    first = await asyncio.to_thread(runner.invoke, app, ["chat", "talk", "hello"], env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "echo: hello (#1)"
    assert STARTING_NOTICE in first.stderr
    second = await asyncio.to_thread(
        runner.invoke, app, ["chat", "talk", "again", "--chat-id", "77"], env=env
    )
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == "echo: again (#2)"
    assert [m.text for m in telegram.sent("1201:talk", 77)] == ["echo: again (#2)"]

    missing = await asyncio.to_thread(runner.invoke, app, ["chat", "nobody", "hi"], env=env)
    assert missing.exit_code == 1
    assert "not found" in missing.stderr
    # Without --telegram-api-base the daemon tells which Bot API it uses.
    discovered = await asyncio.to_thread(
        runner.invoke, app, ["chat", "talk", "hi"], env={**env, "OTM_TELEGRAM_API_BASE": ""}
    )
    assert discovered.exit_code == 0, discovered.output
    assert discovered.stdout.strip() == "echo: hi (#3)"
    not_fake = await asyncio.to_thread(
        runner.invoke,
        app,
        ["chat", "talk", "hi", "--telegram-api-base", daemon.admin_url],
        env=env,
    )
    assert not_fake.exit_code == 1
    assert "fake Bot API" in not_fake.stderr
