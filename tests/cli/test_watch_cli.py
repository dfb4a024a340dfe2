"""`otm tenant list -w`: the table, then one line per change from the SSE stream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from tests.cli.conftest import Cli, api, ok
from tests.support.daemon_proc import DaemonProc, interrupt_quietly, interruptible
from tests.support.servers import project_env

BOT_TOKEN = "123456:CLI-TEST-TOKEN"


def _when_watching(daemon: DaemonProc, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread once the daemon reports a watcher that has been sent
    its snapshot (every later change reaches it), bounded by a deadline."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deadline = time.monotonic() + 15
            while api(daemon, "GET", "/v1/status")[1]["daemon"]["watchers"] < 1:
                assert time.monotonic() < deadline, "watch never attached"
                time.sleep(0.05)
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="watch-driver")
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_watch_prints_table_then_changes(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create before --label tier=gold --bot-token-stdin", input=BOT_TOKEN))

    def changes() -> None:
        assert (
            api(clean_daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "w1"})[0]
            == 201
        )
        assert (
            api(clean_daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "w2"})[0]
            == 201
        )
        assert api(clean_daemon, "DELETE", "/v1/tenants/before")[0] == 204

    driver = _when_watching(clean_daemon, changes)
    try:
        lines = ok(cli("tenant list -w --max-events 3")).splitlines()
    finally:
        driver.join(20)
    assert not driver.errors  # type: ignore[attr-defined]
    assert lines[0].split() == ["NAME", "STATUS", "ENDPOINT", "LAST-ACTIVE", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["before", "idle"],
        ["w1", "idle"],
        ["w2", "idle"],
        ["before", "deleted"],
    ]


def test_watch_json_lines_with_selector(cli: Cli, clean_daemon: DaemonProc) -> None:
    ok(cli("tenant create gold1 --label tier=gold --bot-token-stdin", input=BOT_TOKEN))
    ok(cli("tenant create plain --bot-token-stdin", input=BOT_TOKEN))

    def changes() -> None:
        api(clean_daemon, "POST", "/v1/tenants/plain/suspend")  # not selected: never shown
        api(clean_daemon, "PATCH", "/v1/tenants/gold1", {"labels": {"tier": "silver"}})
        api(
            clean_daemon,
            "POST",
            "/v1/tenants",
            {"bot_token": "1:t", "tenant_id": "gold2", "labels": {"tier": "gold"}},
        )

    driver = _when_watching(clean_daemon, changes)
    try:
        out = ok(cli("tenant list -w -l tier=gold -o json --max-events 2"))
    finally:
        driver.join(20)
    assert not driver.errors  # type: ignore[attr-defined]
    docs = [json.loads(line) for line in out.splitlines()]
    # gold1 left the selection (shown as deleted), gold2 entered it; plain never appears.
    assert [(d["tenant_id"], d["status"]) for d in docs] == [
        ("gold1", "idle"),
        ("gold1", "deleted"),
        ("gold2", "idle"),
    ]


def test_ctrl_c_ends_watch_quietly(clean_daemon: DaemonProc) -> None:
    ok_env = project_env(OTM_DATA_DIR=str(clean_daemon.data_dir))
    with interruptible("-m", "otm", "tenant", "list", "-w", "-o", "name", env=ok_env) as process:
        deadline = time.monotonic() + 15
        while api(clean_daemon, "GET", "/v1/status")[1]["daemon"]["watchers"] < 1:
            assert time.monotonic() < deadline, "watch never attached"
            time.sleep(0.05)
        assert interrupt_quietly(process) == ""
