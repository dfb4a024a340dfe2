"""`otm tenant ...` against a real daemon: output formats, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.conftest import Cli, api, failed, ok
from tests.support.daemon_proc import DaemonProc

BOT_TOKEN = "123456:SECRET-BOT-TOKEN"


def _ids(daemon: DaemonProc) -> list[str]:
    return [t["tenant_id"] for t in api(daemon, "GET", "/v1/tenants")[1]["items"]]


def test_create_from_token_file_then_list_in_every_format(
    cli: Cli, clean_daemon: DaemonProc, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(BOT_TOKEN + "\n")
    out = ok(
        cli(
            f"tenant create acme --bot-token-file {token_file} --idle-timeout 10m "
            "--label tier=gold --label team=a"
        )
    )
    assert out == "tenant/acme created\n"
    ok(cli("tenant create beta --bot-token-stdin", input=BOT_TOKEN))

    table = ok(cli("tenant list")).splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ENDPOINT", "LAST-ACTIVE", "AGE"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["acme", "idle", "<none>"],
        ["beta", "idle", "<none>"],
    ]
    wide = ok(cli("tenant list -o wide")).splitlines()
    assert wide[0].split()[5:] == ["POD", "IDLE-TIMEOUT", "LABELS", "REASON", "WAKES", "INGRESS"]
    assert wide[1].split()[5:] == ["<none>", "10m", "team=a,tier=gold", "<none>", "0", "default"]
    assert wide[2].split()[6] == "default"

    listed = json.loads(ok(cli("tenant list -o json")))
    assert [t["tenant_id"] for t in listed["items"]] == ["acme", "beta"]
    acme = listed["items"][0]
    assert acme["idle_timeout_s"] == 600
    assert acme["labels"] == {"tier": "gold", "team": "a"}
    assert acme["has_bot_token"] is True
    assert yaml.safe_load(ok(cli("tenant list -o yaml"))) == listed
    assert ok(cli("tenant list -o name")) == "tenant/acme\ntenant/beta\n"
    assert ok(cli("tenant list -l tier=gold -o name")) == "tenant/acme\n"
    assert ok(cli("tenant list -l tier!=gold -o name")) == "tenant/beta\n"
    assert ok(cli("tenant list --no-headers")).splitlines()[0].startswith("acme")
    # The secret is never printed, in any format.
    for fmt in ("json", "yaml", "wide"):
        assert BOT_TOKEN not in ok(cli(f"tenant get acme -o {fmt}"))


def test_get_single_and_several(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN))
    ok(cli("tenant create beta --bot-token-stdin", input=BOT_TOKEN))
    single = json.loads(ok(cli("tenant get acme -o json")))
    assert single["tenant_id"] == "acme"
    assert yaml.safe_load(ok(cli("tenant get acme -o yaml")))["tenant_id"] == "acme"
    both = json.loads(ok(cli("tenant get acme beta -o json")))
    assert [t["tenant_id"] for t in both["items"]] == ["acme", "beta"]
    # Like kubectl: found ones printed, the missing one reported, exit 1.
    result = cli("tenant get acme nope -o name")
    assert result.stdout == "tenant/acme\n"
    failed(result, 1, "tenant 'nope' not found")


def test_token_from_stdin_and_warning_for_plain_flag(cli: Cli, clean_daemon: DaemonProc) -> None:
    assert ok(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN + "\n")) == (
        "tenant/acme created\n"
    )
    result = cli(["tenant", "create", "beta", "--bot-token", BOT_TOKEN])
    assert result.exit_code == 0
    assert result.stdout == "tenant/beta created\n"
    assert result.stderr.startswith("warning: --bot-token")
    assert BOT_TOKEN not in result.stderr
    for name in ("acme", "beta"):
        assert api(clean_daemon, "GET", f"/v1/tenants/{name}")[1]["has_bot_token"] is True


def test_usage_errors_exit_2_and_change_nothing(
    cli: Cli, clean_daemon: DaemonProc, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = {
        "tenant create Bad_Name": "invalid tenant id 'Bad_Name'",
        "tenant create nobot": "a bot token is required",
        "tenant create acme --idle-timeout soon": "invalid duration 'soon'",
        "tenant create acme --label novalue": "invalid label 'novalue'",
        "tenant create acme --label tier-": "only makes sense with `otm tenant update`",
        f"tenant create acme --bot-token-file {empty}": "the bot token is empty",
        f"tenant create acme --bot-token-file {tmp_path / 'missing'}": "cannot read bot token",
        f"tenant create acme --bot-token-file {empty} --bot-token-stdin": "only once",
        "tenant get bad-": "invalid tenant id",
        "tenant delete UPPER": "invalid tenant id",
        "tenant update acme": "nothing to update",
        "logs acme --since yesterday": "invalid duration",
    }
    for args, message in cases.items():
        failed(cli(args), 2, message)
    assert _ids(clean_daemon) == []
    # Click's own usage errors (unknown flag, bad choice) also exit 2.
    assert cli("tenant list --bogus").exit_code == 2
    assert cli("tenant list -o xml").exit_code == 2
    assert cli("tenant list --status sleepy").exit_code == 2


def test_server_rejections_same_exit_rule_and_change_nothing(
    cli: Cli, clean_daemon: DaemonProc
) -> None:
    """Server-side validation exits 2 like client-side usage errors; conflicts and
    not-found exit 1 (the rule in the README)."""
    ok(cli("tenant create acme --label tier=gold --bot-token-stdin", input=BOT_TOKEN))
    failed(
        cli("tenant create acme --label tier=silver --bot-token-stdin", input=BOT_TOKEN),
        1,
        "tenant 'acme' already exists",
    )
    failed(
        cli("tenant create beta --idle-timeout 5s --bot-token-stdin", input=BOT_TOKEN),
        2,
        "idle_timeout_s must be",
    )
    failed(
        cli("tenant create beta --label bad=v@lue --bot-token-stdin", input=BOT_TOKEN),
        2,
        "invalid label value",
    )
    for args in ("get", "describe", "delete", "suspend", "resume", "sleep --dry-run"):
        verb, *rest = args.split()
        failed(cli(["tenant", verb, "nope", *rest]), 1, "tenant 'nope' not found")
    failed(cli("tenant update nope --idle-timeout 1h"), 1, "not found")
    failed(cli("tenant resume acme"), 1, "acme")  # not suspended: conditional write refused
    failed(cli("tenant list -l '=x'"), 2, "invalid label selector")
    assert _ids(clean_daemon) == ["acme"]
    assert api(clean_daemon, "GET", "/v1/tenants/acme")[1]["labels"] == {"tier": "gold"}


def test_update_merges_labels_and_clears_timeout(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(
        cli(
            "tenant create acme --label tier=gold --label team=a --idle-timeout 1h "
            "--bot-token-stdin",
            input=BOT_TOKEN,
        )
    )
    out = ok(cli("tenant update acme --label tier- --label zone=eu --idle-timeout default -o json"))
    updated = json.loads(out)
    assert updated["labels"] == {"team": "a", "zone": "eu"}
    assert updated["idle_timeout_s"] is None
    assert ok(cli("tenant update acme --idle-timeout 90s")) == "tenant/acme updated\n"
    assert api(clean_daemon, "GET", "/v1/tenants/acme")[1]["idle_timeout_s"] == 90
    ok(cli("tenant update acme --bot-token-stdin", input=BOT_TOKEN))
    assert api(clean_daemon, "GET", "/v1/tenants/acme")[1]["has_bot_token"] is True


def test_ingress_on_create_update_and_get(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create acme --ingress polling --bot-token-stdin", input=BOT_TOKEN))
    assert json.loads(ok(cli("tenant get acme -o json")))["ingress"] == "polling"
    wide = ok(cli("tenant get acme -o wide")).splitlines()
    assert wide[0].split()[-1] == "INGRESS"
    assert wide[1].split()[-1] == "polling"
    updated = json.loads(ok(cli("tenant update acme --ingress webhook -o json")))
    assert updated["ingress"] == "webhook"
    ok(cli("tenant update acme --ingress default"))
    assert api(clean_daemon, "GET", "/v1/tenants/acme")[1]["ingress"] is None
    failed(cli("tenant update acme --ingress pigeon"), 2, "--ingress: expected one of")
    status, body = api(clean_daemon, "PATCH", "/v1/tenants/acme", {"ingress": "pigeon"})
    assert status == 400
    assert "ingress must be one of webhook, polling" in body["error"]
    status, body = api(
        clean_daemon,
        "POST",
        "/v1/tenants",
        {"tenant_id": "beta", "bot_token": BOT_TOKEN, "ingress": 1},
    )
    assert status == 400
    assert "ingress must be one of" in body["error"]


def test_delete_dry_run_and_several(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN))
    ok(cli("tenant create beta --bot-token-stdin", input=BOT_TOKEN))
    assert ok(cli("tenant delete acme --dry-run")) == 'tenant "acme" deleted (dry run)\n'
    assert _ids(clean_daemon) == ["acme", "beta"]
    result = cli("tenant delete acme nope beta")
    assert result.stdout == 'tenant "acme" deleted\ntenant "beta" deleted\n'
    failed(result, 1, "tenant 'nope' not found")
    assert _ids(clean_daemon) == []


def test_suspend_resume_and_describe(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create acme --label tier=gold --bot-token-stdin", input=BOT_TOKEN))
    assert ok(cli("tenant suspend acme")) == "tenant/acme suspended\n"
    assert json.loads(ok(cli("tenant get acme -o json")))["status"] == "suspended"
    assert ok(cli("tenant list --status suspended -o name")) == "tenant/acme\n"
    text = ok(cli("tenant describe acme"))
    fields = dict(
        (line.split(":", 1)[0], line.split(":", 1)[1].strip())
        for line in text.splitlines()
        if ":" in line and not line.startswith(" ")
    )
    assert fields["Name"] == "acme"
    assert fields["Status"] == "suspended"
    assert fields["Reason"] == "suspended by operator"
    assert fields["Labels"] == "tier=gold"
    assert fields["Buffered"] in {"0", "unknown"}  # "unknown" until the buffer endpoint exists
    events = text.split("Events:\n", 1)[1].splitlines()
    assert events[0].split() == ["AGE", "KIND", "DETAILS"]
    assert [line.split()[1] for line in events[1:]] == ["created", "suspended"]
    resumed = json.loads(ok(cli("tenant resume acme -o json")))
    assert resumed["status"] == "idle"


def test_sleep_dry_run_and_lifecycle_verbs(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN))
    assert ok(cli("tenant sleep acme --dry-run")) == "tenant/acme asleep (dry run; now idle)\n"
    assert api(clean_daemon, "GET", "/v1/tenants/acme")[1]["status"] == "idle"
    for args in ("tenant wake nope", "tenant wake nope --wait", "tenant sleep nope", "logs nope"):
        failed(cli(args), 1, "tenant 'nope' not found")
    assert _ids(clean_daemon) == ["acme"]
    assert not cli("tenant list -o name").stderr


def test_empty_list_says_so_on_stderr_only(cli: Cli) -> None:
    result = cli("tenant list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "No tenants found.\n"
    assert json.loads(ok(cli("tenant list -o json"))) == {"items": []}
