"""CLI tests run the real `otm` app (Typer CliRunner) against a real daemon subprocess."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner, Result

from otm.cli import app
from tests.support.admin_calls import api
from tests.support.daemon_proc import DaemonProc, daemon_env, running_agent_daemon, running_daemon
from tests.support.servers import running_redis


@pytest.fixture(scope="session")
def cli_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the CLI daemon's own: a daemon that outlives one test must not share
    Redis with other tests' daemons (it would take their buffered work as its own)."""
    with running_redis(tmp_path_factory.mktemp("cli-redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def daemon(cli_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    """One daemon for the CLI tests on its own Redis (each test starts clean via
    `clean_daemon`)."""
    data_dir = tmp_path_factory.mktemp("cli") / "otm"
    env = daemon_env(
        data_dir,
        OTM_REDIS_URL=cli_redis,
        OTM_ADMIN_PORT="0",
        OTM_ROUTER_PORT="0",
        # A closed loopback port: a polling tenant's getUpdates must never leave the machine.
        OTM_TELEGRAM_API_BASE="http://127.0.0.1:9",
    )
    with running_daemon(data_dir, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def agent_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    """A daemon of the module's own that runs real (stand-in) agents against a fake Bot API,
    on its own Redis."""
    with running_agent_daemon(tmp_path_factory.mktemp("agents")) as daemon:
        yield daemon


@pytest.fixture
def clean_daemon(daemon: DaemonProc, cli_redis: str) -> DaemonProc:
    """The module daemon with no tenants, no event logs and default live config."""
    status, listed = api(daemon, "GET", "/v1/tenants")
    assert status == 200
    for tenant in listed["items"]:
        assert api(daemon, "DELETE", f"/v1/tenants/{tenant['tenant_id']}")[0] == 204
    client = redis.Redis.from_url(cli_redis)
    try:
        client.flushall()  # event logs outlive their tenant; live config back to defaults
    finally:
        client.close()
    return daemon


class Cli:
    """Runs `otm ARGS` in-process; finds the daemon the way a user would (data dir)."""

    def __init__(self, data_dir: Path) -> None:
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {
            "OTM_DATA_DIR": str(data_dir),
            "OTM_SERVER": None,
            "OTM_ADMIN_TOKEN": None,
            "COLUMNS": "200",
        }

    def __call__(
        self, args: str | list[str], *, input: str | None = None, **env: str | None
    ) -> Result:
        argv = shlex.split(args) if isinstance(args, str) else args
        result = self.runner.invoke(app, argv, input=input, env={**self.env, **env})
        # An unexpected exception also exits 1: never let it pass for an API error.
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result


@pytest.fixture
def cli(clean_daemon: DaemonProc) -> Cli:
    return Cli(clean_daemon.data_dir)


TOKEN_FLAG_WARNING = "warning: --token is visible to other local users in process listings"


def _stderr(result: Result, token_flag: bool) -> str:
    """stderr, less the warning that `--token` always prints first (asserted)."""
    if not token_flag:
        return result.stderr
    first, _, rest = result.stderr.partition("\n")
    assert first.startswith(TOKEN_FLAG_WARNING), result.stderr
    return rest


def ok(result: Result, *, token_flag: bool = False) -> str:
    """Assert success with nothing on stderr; the stdout."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert _stderr(result, token_flag) == ""
    return result.stdout


def failed(result: Result, code: int, *fragments: str, token_flag: bool = False) -> str:
    """Assert exit ``code`` with one `error: ...` line on stderr naming ``fragments``."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    stderr = _stderr(result, token_flag)
    assert stderr.startswith("error: "), stderr
    assert stderr.count("\n") == 1, stderr
    for fragment in fragments:
        assert fragment in stderr
    return stderr
