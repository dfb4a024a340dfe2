"""`otm tenant snapshots` and `otm tenant restore` against a daemon running real stand-in
agents: the history a sleep leaves, restore by key and by time, and the usage errors."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Cli, failed, ok
from tests.support.admin_calls import api
from tests.support.daemon_proc import DaemonProc

BOT_TOKEN = "535353:SNAPSHOT-TOKEN"


def test_snapshots_and_restore(agent_daemon: DaemonProc) -> None:
    cli = Cli(agent_daemon.data_dir)
    ok(cli("tenant create snap --bot-token-stdin", input=BOT_TOKEN))
    assert ok(cli("tenant snapshots snap -o json")) == '{\n  "items": []\n}\n'
    empty = cli("tenant snapshots snap")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (
        0,
        "",
        "No snapshots of tenant snap.\n",
    )
    for _ in range(2):
        ok(cli("tenant wake snap --wait"))
        ok(cli("tenant sleep snap"))

    table = ok(cli("tenant snapshots snap")).splitlines()
    assert table[0].split() == ["TAKEN", "AGE", "TRIGGER", "SIZE", "KEY"]
    assert [row.split()[2] for row in table[1:]] == ["sleep", "sleep"]
    items = json.loads(ok(cli("tenant snapshots snap -o json")))["items"]
    assert [row.split()[-1] for row in table[1:]] == [i["key"] for i in items]
    older, newest = items[1], items[0]

    restored = ok(cli(["tenant", "restore", "snap", "--snapshot", older["key"]]))
    assert restored == (
        f"tenant/snap restored to {older['key']} (taken {older['taken_at']}); now running\n"
    )
    assert api(agent_daemon, "GET", "/v1/tenants/snap")[1]["status"] == "running"
    body = json.loads(
        ok(cli(["tenant", "restore", "snap", "--at", newest["taken_at"], "-o", "json"]))
    )
    assert body["restored"]["key"] == newest["key"]
    triggers = [i["trigger"] for i in json.loads(ok(cli("tenant snapshots snap -o json")))["items"]]
    assert triggers[:2] == ["restore", "sleep"] and triggers.count("restore") == 2

    # Nothing that old, an unknown key, an unknown tenant: the daemon's 404 in one line.
    failed(cli("tenant restore snap --at 30d"), 1, "no snapshot taken at or before")
    failed(cli("tenant restore snap --snapshot snapshots/history/nope.tar.gz"), 1, "nope")
    failed(cli("tenant restore ghost --at 1h"), 1, "ghost")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("tenant restore snap", "exactly one of --at TIME and --snapshot KEY"),
        ("tenant restore snap --at 1h --snapshot k", "exactly one of"),
        ("tenant restore snap --at yesterday", "--at: expected an RFC 3339 time"),
        ("tenant restore Bad_Id --at 1h", "Bad_Id"),
    ],
)
def test_restore_usage_errors_exit_2(agent_daemon: DaemonProc, args: str, fragment: str) -> None:
    failed(Cli(agent_daemon.data_dir)(args), 2, fragment)
