"""Finding 3: a tenant's agent reads neither another tenant's files, nor the admin
token, nor the daemon's credentials (real agent processes on the local runtime)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from daemon.adapters.local.runtime import LocalRuntime
from daemon.adapters.local.sandbox import AgentSandbox, agent_environment, bwrap_works
from daemon.adapters.state_dir import DirStateStore
from daemon.settings import load_settings
from otm.devtools.fake_telegram import FakeTelegram
from tests.support.records import sample_launch as launch

PROBE = (sys.executable, "-m", "tests.security.probe_agent")
AWS_SECRET = "AKIA-sentinel-secret-of-the-daemon"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(host="127.0.0.1", port=0) as fake:
        yield fake


async def run_probe(
    data_dir: Path, telegram: FakeTelegram, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Start tenant alpha, then a probing agent for bravo; bravo's PROBE lines."""
    settings = load_settings(
        flags={
            "data_dir": str(data_dir),
            "telegram_api_base": telegram.base_url,
            "agent_stop_grace_s": 10.0,
            "agent_command": PROBE,
            "agent_sandbox": sandbox,
        },
        env={},
    )
    settings.data_dir.mkdir(mode=0o700)
    admin_token = settings.admin_token_path
    admin_token.write_text("admin-sentinel\n")
    admin_token.chmod(0o600)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    # The daemon user's home holds cloud credentials (a stand-in home for the test).
    home = data_dir.parent / "daemon-home"
    aws_credentials = home / ".aws" / "credentials"
    aws_credentials.parent.mkdir(parents=True)
    aws_credentials.write_text(f"[default]\naws_secret_access_key = {AWS_SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OTM_ADMIN_TOKEN", "admin-sentinel")
    async with aiohttp.ClientSession() as session:
        runtime = LocalRuntime(
            settings=settings,
            state_store=DirStateStore(settings.state_dir),
            session=session,
            webhook_url_for=lambda tid: f"http://127.0.0.1:9/tg/{tid}",
        )
        try:
            await runtime.start(launch("alpha"))
            await runtime.wait_ready("alpha", 30)
            alpha_config = next((settings.agents_dir / "alpha").glob("*/openclaw.json"))
            assert alpha_config.exists()
            # The daemon's own environment (this process plays the daemon) too.
            daemon_environ = f"/proc/{os.getpid()}/environ"
            targets = [str(alpha_config), str(admin_token), str(settings.sqlite_path)]
            targets.append(daemon_environ)
            targets.append(str(aws_credentials))
            settings.sqlite_path.write_text("registry-sentinel")
            monkeypatch.setenv("OTM_AGENT_PROBE_READ", os.pathsep.join(targets))
            await runtime.start(launch("bravo"))
            await runtime.wait_ready("bravo", 30)
            lines = [
                line
                async for line in runtime.logs("bravo", follow=False, since_s=None)
                if "PROBE" in line
            ]
        finally:
            await runtime.close()
    return [line[line.index("PROBE") :].strip() for line in lines]


@pytest.mark.skipif(bwrap_works() is not None, reason=f"bubblewrap unusable: {bwrap_works()}")
async def test_sandboxed_agent_cannot_read_other_tenants_or_daemon_secrets(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes = await run_probe(tmp_path / "data", telegram, "bwrap", monkeypatch)
    reads = [p for p in probes if p.startswith("PROBE read ")]
    assert len(reads) == 5, probes
    assert all(" denied " in p for p in reads), reads
    env_line = next(p for p in probes if p.startswith("PROBE env "))
    names = env_line.split()[2:]
    assert "AWS_SECRET_ACCESS_KEY" not in names
    assert "OTM_ADMIN_TOKEN" not in names


async def test_unsandboxed_agent_still_gets_no_daemon_credentials(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """agent_sandbox=none: the files are readable (documented), the environment is not."""
    probes = await run_probe(tmp_path / "data", telegram, "none", monkeypatch)
    env_line = next(p for p in probes if p.startswith("PROBE env "))
    names = env_line.split()[2:]
    assert "AWS_SECRET_ACCESS_KEY" not in names
    assert "OTM_ADMIN_TOKEN" not in names
    assert "OTM_AGENT_PROBE_READ" in names  # agent knobs still pass
    # Without the sandbox the files are readable: what the bwrap test's denials mean.
    assert any(p.startswith("PROBE read ") and p.endswith(" ok") for p in probes), probes


def test_environment_is_an_allow_list() -> None:
    parent = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "NODE_OPTIONS": "--max-old-space-size=512",
        "OPENCLAW_X": "1",
        "OTM_AGENT_BOOT_DELAY_S": "1",
        "OTM_AGENT_COMMAND": "daemon setting",
        "OTM_ADMIN_TOKEN": "t",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_ACCESS_KEY_ID": "k",
        "GITHUB_TOKEN": "g",
        "DATABASE_URL": "postgres://u:p@h/db",
        "HOME": "/root",
    }
    env = agent_environment(parent, frozenset({"OTM_AGENT_COMMAND", "OTM_ADMIN_TOKEN"}))
    assert sorted(env) == [
        "LANG",
        "NODE_OPTIONS",
        "OPENCLAW_X",
        "OTM_AGENT_BOOT_DELAY_S",
        "PATH",
        "TZ",
    ]


def test_forced_bwrap_without_bubblewrap_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon.adapters.local import sandbox as local_sandbox

    monkeypatch.setattr(local_sandbox, "bwrap_works", lambda: "not installed (test)")
    with pytest.raises(local_sandbox.SandboxUnavailable):
        AgentSandbox.resolve("bwrap", tmp_path)
    assert AgentSandbox.resolve("auto", tmp_path).mode == "none"


@pytest.mark.skipif(bwrap_works() is not None, reason=f"bubblewrap unusable: {bwrap_works()}")
async def test_agent_code_under_tmp_stays_readable_in_the_sandbox(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox hides /tmp; an agent whose code lives there (a checkout in /tmp, as CI
    clones it) must still start, while the data directory beside it stays hidden."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "tmp_probe_agent.py").write_text((Path(__file__).parent / "probe_agent.py").read_text())
    monkeypatch.setenv("PYTHONPATH", str(code))
    monkeypatch.setattr(sys.modules[__name__], "PROBE", (sys.executable, "-m", "tmp_probe_agent"))
    probes = await run_probe(tmp_path / "data", telegram, "bwrap", monkeypatch)
    reads = [p for p in probes if p.startswith("PROBE read ")]
    assert len(reads) == 5 and all(" denied " in p for p in reads), probes


def test_exposed_roots_show_code_under_hidden_dirs_but_never_the_data_dir(
    tmp_path: Path,
) -> None:
    from daemon.adapters.local.sandbox import _exposed_roots

    hidden = str(tmp_path)
    python = tmp_path / "ci" / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    data = tmp_path / "run" / "data"
    code = tmp_path / "run" / "code"
    (data / "x").mkdir(parents=True)
    code.mkdir()
    # A checkout in a hidden dir: its whole entry (venv lib/ beside bin/) is shown.
    assert _exposed_roots([str(python), "-m", "x"], [hidden], str(data)) == [str(tmp_path / "ci")]
    # The data dir lives in that entry: only the path itself is shown.
    assert _exposed_roots([str(code)], [hidden], str(data)) == [str(code)]
    assert _exposed_roots([str(data / "x"), "/usr/bin", "relative"], [hidden], str(data)) == []
