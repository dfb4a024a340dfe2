"""README's "Running a real OpenClaw locally", as written: OTM_AGENT_COMMAND with the
README's relative `.tools/...` paths, a daemon started in the repository (as run-local.sh
does), and `otm chat` getting the real gateway's answer on the first try."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from otm.cli import app
from tests.e2e.harness import ADMIN_TOKEN, Daemon, end_orphan_agents
from tests.support.openclaw import BOOT_TIMEOUT_S, openclaw_installed
from tests.support.servers import REPO_ROOT, running_redis, telegram_and_llm

pytestmark = [
    pytest.mark.openclaw,
    pytest.mark.skipif(
        not openclaw_installed(), reason="scripts/install-openclaw.sh has not installed OpenClaw"
    ),
    pytest.mark.timeout(360),  # one boot (~65 s under load), one turn, a drain
]


def _readme_command() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Running a real OpenClaw locally", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return shlex.split(block.split("OTM_AGENT_COMMAND=", 1)[1])[0]


async def test_the_readme_recipe_answers_through_otm_chat(tmp_path: Path, data_dir: Path) -> None:
    command = _readme_command()
    assert command.startswith(".tools/")  # relative, exactly as a user pastes it
    with running_redis(tmp_path / "redis") as redis:
        async with telegram_and_llm() as (telegram, llm):
            daemon = Daemon(
                data_dir,
                redis.url,
                telegram,
                OTM_AGENT_COMMAND=command,
                OTM_AGENT_MODEL_BASE_URL=llm.base_url,
                OTM_AGENT_MODEL_ID="stub-model",
                OTM_WAKE_TIMEOUT_S=str(BOOT_TIMEOUT_S),
                OTM_AGENT_STOP_GRACE_S="60",
            )
            try:
                await daemon.start()  # cwd: the repository, as run-local.sh
                await daemon.create_tenant("readme", "1901:readme")
                env = {
                    "OTM_DATA_DIR": str(daemon.data_dir),
                    "OTM_ADMIN_TOKEN": ADMIN_TOKEN,
                    "OTM_TELEGRAM_API_BASE": telegram.base_url,
                }
                # The default --timeout covers a real cold boot on a loaded machine.
                chat = await asyncio.to_thread(
                    CliRunner().invoke, app, ["chat", "readme", "hello from the README"], env=env
                )
                assert chat.exit_code == 0, (chat.output, daemon.log_tail())
                assert chat.stdout.startswith("echo: ")
                assert "hello from the README" in chat.stdout
                assert (await daemon.tenant("readme"))["wake_attempts"] == 0
            finally:
                await daemon.stop(timeout=90)
                end_orphan_agents(data_dir)
