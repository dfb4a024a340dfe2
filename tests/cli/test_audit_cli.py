"""The audit trail of a scripted sequence of CLI actions against a real daemon (real agent
processes, fake Telegram Bot API), read back exactly; the access log beside it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.conftest import Cli, failed, ok
from tests.support.daemon_proc import DaemonProc, running_agent_daemon

BOT_TOKEN = "424242:AUDIT-FIRST-TOKEN"
NEW_BOT_TOKEN = "424242:AUDIT-SECOND-TOKEN"


@pytest.fixture
def audited_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    # A daemon per test: the trail test reads back the whole audit log, exactly.
    with running_agent_daemon(
        tmp_path_factory.mktemp("audit"),
        OTM_LOG_LEVEL="INFO",  # the access log is INFO (on by default)
        OTM_LOG_FORMAT="json",
    ) as daemon:
        yield daemon


def _changed(**fields: tuple[Any, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"before": b, "after": a} for name, (b, a) in fields.items()}


def _entries(cli: Cli, args: str) -> list[dict[str, Any]]:
    return list(json.loads(ok(cli(f"audit {args} -o json")))["items"])


def test_cli_sequence_reads_back_as_an_exact_audit_trail(audited_daemon: DaemonProc) -> None:
    cli = Cli(audited_daemon.data_dir)
    started = datetime.now(UTC)
    ok(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN))
    failed(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN), 1, "already exists")
    ok(cli("config set default_idle_timeout_s=15m"))
    ok(cli("tenant suspend acme"))
    ok(cli("tenant resume acme"))
    ok(cli("tenant wake acme --wait"))
    ok(cli("tenant sleep acme"))
    ok(
        cli(
            "tenant update acme --bot-token-stdin --idle-timeout 5m --label tier=gold",
            input=NEW_BOT_TOKEN,
        )
    )
    created = cli("token create ci")
    assert created.exit_code == 0
    assert created.stderr == "token/ci created: store the secret now, it cannot be shown again\n"
    ci_secret = created.stdout.strip()
    assert len(ci_secret) == 64
    ok(cli("tenant rotate-key acme", OTM_ADMIN_TOKEN=ci_secret))
    ok(cli("token revoke ci"))
    failed(cli("tenant get acme", OTM_ADMIN_TOKEN=ci_secret), 1, "unauthorized")
    ok(cli("tenant delete acme"))

    everything = _entries(cli, "--since 1h")
    trail = [
        (e["actor"], e["source"], e["tenant"], e["action"], e["outcome"], e["status"], e["changes"])
        for e in everything
    ]
    created_by_admin = ("admin", "127.0.0.1", "acme")
    assert trail == [
        (
            *created_by_admin,
            "tenant.create",
            "ok",
            201,
            _changed(status=(None, "idle"), bot_token=(None, "***"), model_key_id=(None, "***")),
        ),
        (*created_by_admin, "tenant.create", "error", 409, {}),
        (
            "admin",
            "127.0.0.1",
            None,
            "config.set",
            "ok",
            200,
            _changed(default_idle_timeout_s=(600, 900)),
        ),
        (
            *created_by_admin,
            "tenant.suspend",
            "ok",
            200,
            _changed(
                status=("idle", "suspended"),
                status_reason=("", "suspended by operator"),
                model_key_id=("***", "***"),
            ),
        ),
        (
            *created_by_admin,
            "tenant.resume",
            "ok",
            200,
            _changed(status=("suspended", "idle"), status_reason=("suspended by operator", "")),
        ),
        (*created_by_admin, "tenant.wake", "ok", 200, _changed(status=("idle", "running"))),
        (*created_by_admin, "tenant.sleep", "ok", 200, _changed(status=("running", "idle"))),
        (
            *created_by_admin,
            "tenant.update",
            "ok",
            200,
            _changed(
                bot_token=("***", "***"), idle_timeout_s=(None, 300), labels=({}, {"tier": "gold"})
            ),
        ),
        ("admin", "127.0.0.1", None, "token.create", "ok", 201, _changed(token=(None, "ci"))),
        (
            "ci",
            "127.0.0.1",
            "acme",
            "tenant.rotate-key",
            "ok",
            200,
            _changed(model_key_id=("***", "***")),
        ),
        ("admin", "127.0.0.1", None, "token.revoke", "ok", 204, _changed(token=("ci", None))),
        (
            *created_by_admin,
            "tenant.delete",
            "ok",
            204,
            _changed(
                status=("idle", None),
                bot_token=("***", None),
                idle_timeout_s=(300, None),
                labels=({"tier": "gold"}, None),
                model_key_id=("***", None),
            ),
        ),
    ]
    assert "already exists" in everything[1]["error"]
    times = [datetime.fromisoformat(e["time"]) for e in everything]
    assert times == sorted(times)
    assert started - timedelta(seconds=1) <= times[0]
    assert len({e["id"] for e in everything}) == len(everything)

    # The deleted tenant's trail stays, and the filter keeps only its entries.
    tenant_trail = _entries(cli, "--tenant acme")
    assert [e["id"] for e in tenant_trail] == [e["id"] for e in everything if e["tenant"]]
    assert [e["action"] for e in _entries(cli, "--actor ci")] == ["tenant.rotate-key"]
    # Paging: the newest N, still oldest first.
    assert [e["id"] for e in _entries(cli, "--limit 2")] == [e["id"] for e in everything[-2:]]

    table = ok(cli("audit --tenant acme")).splitlines()
    assert table[0].split() == ["TIME", "ACTOR", "SOURCE", "TENANT", "ACTION", "OUTCOME", "CHANGES"]
    assert 'status: idle→suspended, status_reason: ""→suspended by operator' in table[3]

    failed(cli("audit --since yesterday"), 2, "since")
    failed(cli("audit --tenant Not_A_Tenant"), 2, "invalid tenant id")

    shown = ok(cli("audit -o json")) + ok(cli("audit")) + ok(cli("token list -o json"))
    for secret in (BOT_TOKEN, NEW_BOT_TOKEN, ci_secret, audited_daemon.token):
        assert secret not in shown


def test_access_log_names_actor_and_never_a_secret(audited_daemon: DaemonProc) -> None:
    cli = Cli(audited_daemon.data_dir)
    ok(cli("tenant create logged --bot-token-stdin", input=BOT_TOKEN))
    ok(cli("tenant get logged"))
    ok(cli("tenant delete logged"))
    lines = [json.loads(line) for line in audited_daemon.log_path.read_text().splitlines()]
    access = [line for line in lines if line["logger"] == "daemon.admin.access"]
    created = [line for line in access if (line["method"], line["path"]) == ("POST", "/v1/tenants")]
    assert created, access
    assert created[-1]["status"] == 201
    assert created[-1]["actor"] == "admin"
    assert created[-1]["source"] == "127.0.0.1"
    assert created[-1]["duration_ms"] >= 0
    got = [line for line in access if line["path"] == "/v1/tenants/logged"]
    assert [(line["method"], line["status"]) for line in got][-2:] == [
        ("GET", 200),
        ("DELETE", 204),
    ]
    text = audited_daemon.log_path.read_text()
    for secret in (BOT_TOKEN, audited_daemon.token, "Bearer"):
        assert secret not in text
