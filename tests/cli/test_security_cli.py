"""Finding 8, CLI side: `otm logs` never writes terminal escape sequences from an agent's
log, and `--token` warns that it is visible in process listings."""

from __future__ import annotations

from daemon.adapters.local.logs import stamp
from otm.terminal import strip_terminal_controls
from tests.cli.conftest import TOKEN_FLAG_WARNING, Cli, api, ok
from tests.support.daemon_proc import DaemonProc

HOSTILE = (
    "title\x1b]0;pwned\x07 red\x1b[31m clear\x1b[2J link\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\"
    " c1\x9b6n bell\x07 end"
)


def test_logs_strip_terminal_escapes(cli: Cli, clean_daemon: DaemonProc) -> None:
    status, _ = api(clean_daemon, "POST", "/v1/tenants", {"tenant_id": "esc", "bot_token": "1:e"})
    assert status == 201
    log = clean_daemon.data_dir / "agents" / "esc" / "agent.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(stamp(HOSTILE) + "\n")
    out = ok(cli("logs esc"))
    assert "title" in out and "end" in out
    assert not any(ch in out for ch in "\x1b\x07\x9b"), repr(out)


def test_strip_keeps_plain_text_and_tabs() -> None:
    assert strip_terminal_controls("a\tb c: {json} ü") == "a\tb c: {json} ü"
    assert strip_terminal_controls(HOSTILE) == ("title red clear linkx c16n bell end")


def test_token_flag_warns_about_process_listings(cli: Cli, clean_daemon: DaemonProc) -> None:
    result = cli(["--token", clean_daemon.token, "tenant", "list"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith(TOKEN_FLAG_WARNING)
    assert "OTM_ADMIN_TOKEN" in result.stderr
    quiet = cli(["tenant", "list"], OTM_ADMIN_TOKEN=clean_daemon.token)
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
