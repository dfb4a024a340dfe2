"""What the local runtime gives an agent: the model provider, its environment, what it saves.

Real processes: the stand-in agent (which reads openclaw.json like OpenClaw), the stub model
server and the fake Bot API, all on loopback.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from daemon.adapters.local.runtime import PID_FILE, LocalRuntime
from daemon.adapters.state_dir import DirStateStore
from daemon.telegram import SECRET_HEADER
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from otm.devtools.stub_llm import StubLLM
from tests.support.local_runtime import local_runtime_settings, new_local_runtime
from tests.support.records import sample_launch
from tests.support.servers import telegram_and_llm

READY_TIMEOUT = 20.0
MODEL_KEY = "sk-upstream-model-key"
TENANT_KEY = "otm-mk-modeltenant.k1.mac"
LAUNCH = sample_launch("modeltenant", model_key=TENANT_KEY)


Setup = tuple[LocalRuntime, FakeTelegram, StubLLM, DirStateStore]


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    # In the daemon's environment: a stand-in knob (passed on) and the model key as the
    # operator would set it (a daemon setting: never passed on).
    monkeypatch.setenv("OTM_AGENT_RETRY_MAX_S", "7")
    monkeypatch.setenv("OTM_AGENT_MODEL_API_KEY", MODEL_KEY)
    async with telegram_and_llm() as (telegram, llm):
        settings = local_runtime_settings(
            tmp_path,
            telegram.base_url,
            agent_model_base_url=llm.base_url,
            agent_model_id="stub-model",
            # The runtime alone: the stub stands where the daemon's gateway would be.
            model_gateway_url=llm.base_url,
        )
        assert settings.agent_model_api_key == MODEL_KEY
        session = aiohttp.ClientSession()
        runtime, store = new_local_runtime(settings, session)
        try:
            yield runtime, telegram, llm, store
        finally:
            await runtime.close()
            await session.close()


def _run_dir(runtime: LocalRuntime) -> Path:
    [pid_file] = (runtime.root / LAUNCH.tenant_id).glob(f"*/{PID_FILE}")
    return pid_file.parent


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


async def test_agent_gets_the_model_provider_and_answers_through_it(setup: Setup) -> None:
    runtime, telegram, llm, _ = setup
    await runtime.start(LAUNCH)
    instance = await runtime.wait_ready(LAUNCH.tenant_id, READY_TIMEOUT)
    run_dir = _run_dir(runtime)

    config_path = run_dir / "openclaw.json"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    config = json.loads(config_path.read_text())
    assert config["agents"]["defaults"]["model"]["primary"] == "otm/stub-model"
    provider = config["models"]["providers"]["otm"]
    # The tenant's own gateway key; the upstream's key is nowhere in the agent's config.
    assert (provider["baseUrl"], provider["apiKey"]) == (llm.base_url, TENANT_KEY)
    assert MODEL_KEY not in config_path.read_text()
    assert [m["id"] for m in provider["models"]] == ["stub-model"]
    assert config["logging"]["file"] == str(run_dir / "openclaw-file.log")

    assert instance.webhook_url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            instance.webhook_url,
            json=make_text_update(1, 77, "model please"),
            headers={SECRET_HEADER: LAUNCH.webhook_secret},
        ) as response,
    ):
        assert response.status == 200
    [reply] = await telegram.wait_for_messages(LAUNCH.bot_token, 1, timeout=READY_TIMEOUT)
    assert reply.text == "echo: model please (prior user turns: 0)"
    [request] = llm.requests
    assert request.model == "stub-model" and request.had_authorization


async def test_agent_environment_keeps_daemon_settings_out(setup: Setup) -> None:
    runtime, _, _, _ = setup
    await runtime.start(LAUNCH)
    await runtime.wait_ready(LAUNCH.tenant_id, READY_TIMEOUT)
    run_dir = _run_dir(runtime)
    env = _environ(int((run_dir / PID_FILE).read_text().split()[0]))

    assert env["HOME"] == str(run_dir / "home")
    assert env["OPENCLAW_STATE_DIR"] == str(run_dir / "state")
    assert env["OPENCLAW_CONFIG_PATH"] == str(run_dir / "openclaw.json")
    assert env["OPENCLAW_CONFIG_READONLY"] == env["NO_COLOR"] == "1"
    # The command's own directory comes first in PATH (node's bin dir for a real gateway).
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert env["OTM_AGENT_RETRY_MAX_S"] == "7"
    assert "OTM_AGENT_MODEL_API_KEY" not in env
    assert not [k for k, v in env.items() if MODEL_KEY in v]


async def test_stop_saves_state_without_regenerable_dirs(setup: Setup) -> None:
    runtime, _, _, store = setup
    await runtime.start(LAUNCH)
    await runtime.wait_ready(LAUNCH.tenant_id, READY_TIMEOUT)
    state = _run_dir(runtime) / "state"
    # What OpenClaw keeps beside its databases: a rebuilt-on-start UI cache, temp files.
    (state / "cache" / "control-ui-assets").mkdir(parents=True)
    (state / "cache" / "control-ui-assets" / "index.js").write_bytes(b"x" * 4096)
    (state / "tmp").mkdir(exist_ok=True)
    (state / "tmp" / "scratch").write_text("per process")
    (state / "notes.md").write_text("kept")

    await runtime.stop(LAUNCH.tenant_id, grace_s=10)

    snapshot = await store.get(LAUNCH.tenant_id, "snapshots/latest.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(snapshot), mode="r:gz") as tar:
        names = tar.getnames()
    assert "notes.md" in names
    assert not [n for n in names if n.split("/")[0] in ("cache", "tmp")], names
    log = (runtime.root / LAUNCH.tenant_id / "agent.log").read_text()
    assert log.rstrip().endswith("stopped: agent exited with code 0")
