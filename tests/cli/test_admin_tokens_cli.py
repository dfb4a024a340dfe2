"""Named admin tokens across two daemon replicas on one Redis: created on one, accepted by
both; revoked on one, refused by both at once (nothing cached per replica)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, failed, ok
from tests.support.daemon_proc import DaemonProc, daemon_env, running_daemon
from tests.support.servers import running_redis

CONFIGURED_TOKEN = "configured-admin-token-shared-by-replicas"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc]]:
    with running_redis(tmp_path / "redis") as redis_server:

        def env(name: str) -> dict[str, str]:
            return daemon_env(
                tmp_path / name,
                OTM_REDIS_URL=redis_server.url,
                OTM_ADMIN_PORT="0",
                OTM_ROUTER_PORT="0",
                OTM_ADMIN_TOKEN=CONFIGURED_TOKEN,
            )

        with (
            running_daemon(tmp_path / "a", env=env("a")) as first,
            running_daemon(tmp_path / "b", env=env("b")) as second,
        ):
            yield first, second


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI with no local daemon (this module's `cli`): each call names a replica and token."""
    return Cli(tmp_path / "no-local-daemon")


def _create_token(cli: Cli, daemon: DaemonProc, name: str) -> str:
    """`otm token create NAME` with the configured token; the new secret."""
    created = cli(
        f"token create {name}", OTM_SERVER=daemon.admin_url, OTM_ADMIN_TOKEN=CONFIGURED_TOKEN
    )
    assert created.exit_code == 0, created.stderr
    return created.stdout.strip()


def test_revoked_token_is_refused_by_every_replica_at_once(
    replicas: tuple[DaemonProc, DaemonProc], cli: Cli
) -> None:
    first, second = replicas
    secret = _create_token(cli, first, "ci")
    for daemon in (first, second):
        ok(cli("tenant list -o json", OTM_SERVER=daemon.admin_url, OTM_ADMIN_TOKEN=secret))

    listed = json.loads(
        ok(cli("token list -o json", OTM_SERVER=second.admin_url, OTM_ADMIN_TOKEN=secret))
    )
    assert [(t["name"], t["created_by"], t["revoked"]) for t in listed["items"]] == [
        ("admin", "configuration", False),
        ("ci", "admin", False),
    ]
    assert secret not in json.dumps(listed)

    ok(cli("token revoke ci", OTM_SERVER=first.admin_url, OTM_ADMIN_TOKEN=CONFIGURED_TOKEN))
    for daemon in (second, first):
        failed(
            cli("tenant list -o json", OTM_SERVER=daemon.admin_url, OTM_ADMIN_TOKEN=secret),
            1,
            "unauthorized",
        )
    failed(
        cli("token revoke ci", OTM_SERVER=second.admin_url, OTM_ADMIN_TOKEN=CONFIGURED_TOKEN),
        1,
        "not found",
    )


def test_configured_token_is_revocable_and_named_tokens_keep_working(
    replicas: tuple[DaemonProc, DaemonProc], cli: Cli
) -> None:
    first, second = replicas
    ops = _create_token(cli, first, "ops")
    ok(cli("token revoke admin", OTM_SERVER=second.admin_url, OTM_ADMIN_TOKEN=ops))
    for daemon in (first, second):
        failed(
            cli(
                "tenant list -o json", OTM_SERVER=daemon.admin_url, OTM_ADMIN_TOKEN=CONFIGURED_TOKEN
            ),
            1,
            "unauthorized",
        )
        ok(cli("tenant list -o json", OTM_SERVER=daemon.admin_url, OTM_ADMIN_TOKEN=ops))
    listed = json.loads(
        ok(cli("token list -o json", OTM_SERVER=first.admin_url, OTM_ADMIN_TOKEN=ops))
    )
    assert listed["items"][0] == {
        "name": "admin",
        "created_at": None,
        "created_by": "configuration",
        "revoked": True,
    }
    audit = json.loads(ok(cli("audit -o json", OTM_SERVER=first.admin_url, OTM_ADMIN_TOKEN=ops)))
    assert [(e["actor"], e["action"], e["changes"]) for e in audit["items"]] == [
        ("admin", "token.create", {"token": {"before": None, "after": "ops"}}),
        ("ops", "token.revoke", {"token": {"before": "admin", "after": None}}),
    ]


def test_token_names_and_bad_requests(replicas: tuple[DaemonProc, DaemonProc], cli: Cli) -> None:
    first, _ = replicas
    env = {"OTM_SERVER": first.admin_url, "OTM_ADMIN_TOKEN": CONFIGURED_TOKEN}
    failed(cli("token create Not_Valid", **env), 2, "token name")
    failed(cli("token create admin", **env), 1, "already exists")
    assert cli("token create dup", **env).exit_code == 0
    failed(cli("token create dup", **env), 1, "already exists")
    failed(cli("token revoke nobody", **env), 1, "not found")
