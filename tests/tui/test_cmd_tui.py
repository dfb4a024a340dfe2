"""`otm tui`: registration, argument errors before the screen takes over, lazy import of
Textual, and one real run in a pseudo-terminal against a real daemon."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from otm.cli import app
from tests.support.admin_calls import api
from tests.support.daemon_proc import DaemonProc
from tests.support.servers import project_env, python_cmd

runner = CliRunner()


def test_tui_is_registered_with_readonly() -> None:
    result = runner.invoke(app, ["tui", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "--readonly" in result.stdout
    assert "tui" in runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).stdout


def test_tui_without_a_daemon_fails_before_starting(tmp_path: Path) -> None:
    env = {"OTM_DATA_DIR": str(tmp_path), "OTM_SERVER": None, "OTM_ADMIN_TOKEN": None}
    result = runner.invoke(app, ["tui"], env=env)
    assert result.exit_code == 1
    assert "no running daemon found" in result.stderr
    result = runner.invoke(app, ["tui", "--server", "ftp://nowhere"], env=env)
    assert result.exit_code == 2
    assert "invalid server URL" in result.stderr


def test_tui_without_textual_says_which_extra_to_install(tmp_path: Path) -> None:
    """The server image has no Textual (pyproject's tui extra): one line, exit 1."""
    code = (
        "import sys; sys.modules['textual'] = None; "  # as if not installed
        "from otm.cli import main; sys.argv = ['otm', 'tui', '--server', "
        "'http://127.0.0.1:9', '--token', 't']; main()"
    )
    out = subprocess.run(
        python_cmd("-c", code), env=project_env(), capture_output=True, text=True, check=False
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == "otm tui needs Textual: pip install 'otm[tui]'"


def test_cli_startup_does_not_import_textual() -> None:
    code = "import sys, otm.cli; print('textual' in sys.modules, 'otm.tui' in sys.modules)"
    out = subprocess.run(
        python_cmd("-c", code), env=project_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} never appeared; got {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen


def test_otm_tui_runs_in_a_terminal(daemon: DaemonProc) -> None:
    assert (
        api(daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "pty-tenant"})[0]
        == 201
    )
    env = project_env(OTM_DATA_DIR=str(daemon.data_dir), TERM="xterm-256color",
                      COLUMNS="100", LINES="30")  # fmt: skip
    env.pop("OTM_SERVER", None)
    env.pop("OTM_ADMIN_TOKEN", None)
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        python_cmd("-m", "otm", "tui", "--readonly"),
        env=env,
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        start_new_session=True,
    )
    os.close(child_fd)
    try:
        screen = read_until(main_fd, b"pty-tenant", time.monotonic() + 30)
        assert b"READ-ONLY" in screen or b"READ-ONLY" in read_until(
            main_fd, b"READ-ONLY", time.monotonic() + 10
        )
        os.write(main_fd, b"q")
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(main_fd)
