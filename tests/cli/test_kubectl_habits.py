"""kubectl habits the CLI keeps (issue 16): `-o name` round-trips through xargs,
bulk delete with a question, describe as a document, dry runs, label columns,
jsonpath/custom-columns, versions, set-based selectors, completion and help text."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
import yaml

from tests.cli.conftest import Cli, api, failed, ok
from tests.support.daemon_proc import DaemonProc
from tests.support.servers import project_env, python_cmd

BOT_TOKEN = "123456:HABITS-TOKEN"


def _create(cli: Cli, name: str, *labels: str) -> None:
    flags = " ".join(f"--label {label}" for label in labels)
    ok(cli(f"tenant create {name} {flags} --bot-token-stdin", input=BOT_TOKEN))


def _ids(daemon: DaemonProc) -> list[str]:
    return sorted(t["tenant_id"] for t in api(daemon, "GET", "/v1/tenants")[1]["items"])


def test_list_o_name_pipes_into_delete_through_xargs(cli: Cli, clean_daemon: DaemonProc) -> None:
    _create(cli, "free1", "tier=free")
    _create(cli, "free2", "tier=free")
    _create(cli, "gold", "tier=gold")
    otm = shlex.join(python_cmd("-m", "otm"))
    pipeline = f"{otm} tenant list -o name -l tier=free | xargs {otm} tenant delete"
    done = subprocess.run(
        ["sh", "-c", pipeline],
        env=project_env(OTM_DATA_DIR=str(clean_daemon.data_dir)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['tenant "free1" deleted', 'tenant "free2" deleted']
    assert _ids(clean_daemon) == ["gold"]
    # Every command takes tenant/NAME.
    assert json.loads(ok(cli("tenant get tenant/gold -o json")))["tenant_id"] == "gold"
    assert "Name:" in ok(cli("tenant describe tenant/gold"))
    ok(cli("tenant update tenant/gold --label team=a"))
    ok(cli("tenant suspend tenant/gold"))


def test_delete_by_selector_or_all_asks_first(cli: Cli, clean_daemon: DaemonProc) -> None:
    _create(cli, "a1", "tier=free")
    _create(cli, "a2", "tier=free")
    _create(cli, "b1", "tier=gold")
    # Nobody at a terminal to answer: refused with the way to confirm, nothing deleted.
    failed(cli("tenant delete -l tier=free"), 2, "deletes 2 tenant(s) (a1, a2)", "--yes")
    failed(cli("tenant delete --all"), 2, "deletes 3 tenant(s)", "--yes")
    assert ok(cli("tenant delete --all --dry-run")).splitlines() == [
        'tenant "a1" deleted (dry run)',
        'tenant "a2" deleted (dry run)',
        'tenant "b1" deleted (dry run)',
    ]
    assert _ids(clean_daemon) == ["a1", "a2", "b1"]
    failed(cli("tenant delete"), 2, "exactly one")
    failed(cli("tenant delete a1 -l tier=free"), 2, "exactly one")
    ok(cli("tenant delete -l tier=free --yes"))
    assert _ids(clean_daemon) == ["b1"]
    ok(cli("tenant delete --all -y"))
    assert _ids(clean_daemon) == []


def test_describe_as_json_and_yaml(cli: Cli, clean_daemon: DaemonProc) -> None:
    _create(cli, "doc", "tier=gold")
    as_json = json.loads(ok(cli("tenant describe doc -o json")))
    assert as_json["tenant"]["tenant_id"] == "doc"
    assert as_json["tenant"]["labels"] == {"tier": "gold"}
    assert as_json["buffer"] == {"pending": 0, "dead_letters": 0}
    assert [e["kind"] for e in as_json["events"]] == ["created"]
    assert yaml.safe_load(ok(cli("tenant describe doc -o yaml"))) == as_json
    assert "bot_token" not in ok(cli("tenant describe doc -o json")).replace("has_bot_token", "")


def test_create_dry_run_changes_nothing(cli: Cli, clean_daemon: DaemonProc) -> None:
    out = ok(
        cli("tenant create dry --label tier=free --dry-run --bot-token-stdin", input=BOT_TOKEN)
    )
    assert out == "tenant/dry created (dry run)\n"
    preview = json.loads(
        ok(cli("tenant create dry --dry-run -o json --bot-token-stdin", input=BOT_TOKEN))
    )
    assert preview["tenant_id"] == "dry" and "bot_token" not in preview
    assert _ids(clean_daemon) == []
    _create(cli, "dry")
    failed(
        cli("tenant create dry --dry-run --bot-token-stdin", input=BOT_TOKEN),
        1,
        "already exists",
    )


def test_show_labels_jsonpath_and_custom_columns(cli: Cli, clean_daemon: DaemonProc) -> None:
    _create(cli, "one", "tier=free", "team=a")
    _create(cli, "two")
    table = ok(cli("tenant list --show-labels")).splitlines()
    assert table[0].split()[-1] == "LABELS"
    assert table[1].split()[0] == "one" and table[1].split()[-1] == "team=a,tier=free"
    assert table[2].split()[-1] == "<none>"
    assert ok(cli("tenant list -o jsonpath={.items[*].tenant_id}")) == "one two\n"
    template = '{range .items[*]}{.tenant_id}{"\\t"}{.labels.tier}{"\\n"}{end}'
    assert ok(cli(["tenant", "list", "-o", f"jsonpath={template}"])) == "one\tfree\ntwo\t\n\n"
    assert ok(cli("tenant get one -o jsonpath={.labels.team}")) == "a\n"
    columns = ok(cli("tenant list -o custom-columns=NAME:.tenant_id,TIER:.labels.tier"))
    assert [line.split() for line in columns.splitlines()] == [
        ["NAME", "TIER"],
        ["one", "free"],
        ["two", "<none>"],
    ]
    assert cli("tenant list -o jsonpath=").exit_code == 2
    assert cli("tenant list -o custom-columns=NAME").exit_code == 2
    assert cli("tenant list -o jsonpath={.items[*.x}").exit_code == 2


def test_version(cli: Cli, clean_daemon: DaemonProc) -> None:
    assert ok(cli("--version")).startswith("otm ")
    lines = ok(cli("version")).splitlines()
    assert lines[0].startswith("Client Version: ")
    assert lines[1].startswith("Server Version: ")
    assert ok(cli("version --client", OTM_DATA_DIR="/nonexistent")).startswith("Client Version")


def test_set_based_selectors(cli: Cli, clean_daemon: DaemonProc) -> None:
    _create(cli, "f", "tier=free")
    _create(cli, "g", "tier=gold")
    _create(cli, "n")

    def names(selector: str) -> list[str]:
        return ok(cli(["tenant", "list", "-o", "name", "-l", selector])).split()

    assert names("tier in (free,gold)") == ["tenant/f", "tenant/g"]
    assert names("tier notin (free)") == ["tenant/g", "tenant/n"]
    assert names("!tier") == ["tenant/n"]
    assert names("tier,tier!=gold") == ["tenant/f"]
    assert names("tier==gold") == ["tenant/g"]
    for bad in ("tier in free", "tier in ()", "=x", "tier in (a b)"):
        failed(cli(["tenant", "list", "-l", bad]), 2, "invalid label selector")


@pytest.mark.parametrize(
    "command",
    [
        "tenant list",
        "tenant get",
        "tenant delete",
        "tenant create",
        "tenant describe",
        "config get",
        "config set",
        "logs",
        "chat",
        "version",
    ],
)
def test_help_reads_like_kubectl(cli: Cli, command: str) -> None:
    text = ok(cli(f"{command} --help"))
    for typer_ism in ("<bool>", "<str>", "<int>", "<list", "{NAME", "[[", "<float>"):
        assert typer_ism not in text, (command, typer_ism)


def _complete(daemon: DaemonProc, words: str) -> list[str]:
    parts = words.split(" ")
    result = subprocess.run(
        python_cmd("-m", "otm"),
        env=project_env(
            OTM_DATA_DIR=str(daemon.data_dir),
            _OTM_COMPLETE="complete_bash",
            COMP_WORDS=words,
            COMP_CWORD=str(len(parts) - 1),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_of_config_keys_labels_and_tenants(cli: Cli, clean_daemon: DaemonProc) -> None:
    _create(cli, "comp", "tier=gold")
    assert _complete(clean_daemon, "otm config get warm") == ["warm_pool_target"]
    assert "default_idle_timeout_s=" in _complete(clean_daemon, "otm config set def")
    assert _complete(clean_daemon, "otm tenant list -l ti") == ["tier"]
    assert _complete(clean_daemon, "otm tenant list -l tier=") == ["tier=gold"]
    assert _complete(clean_daemon, "otm tenant describe co") == ["comp"]


def test_durations_everywhere(cli: Cli, clean_daemon: DaemonProc) -> None:
    created = json.loads(
        ok(cli("tenant create dur --idle-timeout 15m -o json --bot-token-stdin", input=BOT_TOKEN))
    )
    assert created["idle_timeout_s"] == 900
    assert "900" in ok(cli("config set default_idle_timeout_s=15m"))
    failed(cli("tenant wake dur --timeout soon"), 2, "--timeout", "invalid duration")
    failed(cli("tenant sleep dur --timeout 0s"), 2, "--timeout must be longer than 0s")
    failed(cli("chat dur hi --timeout forever"), 2, "--timeout", "invalid duration")
    failed(cli("tenant update dur --idle-timeout 1x"), 2, "invalid duration")
