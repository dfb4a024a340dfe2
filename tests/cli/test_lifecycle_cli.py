"""`otm tenant wake|sleep`, `otm logs` and `describe` against a daemon that runs real
agent processes (the bundled stand-in agent) talking to a fake Telegram Bot API."""

from __future__ import annotations

import json
import queue
import threading

from tests.cli.conftest import Cli, api, failed, ok
from tests.support.daemon_proc import DaemonProc, interrupt_quietly, interruptible
from tests.support.servers import project_env

BOT_TOKEN = "424242:LIFECYCLE-TOKEN"


def test_wake_logs_sleep_roundtrip(agent_daemon: DaemonProc) -> None:
    cli = Cli(agent_daemon.data_dir)
    ok(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN))
    try:
        assert ok(cli("tenant wake acme --wait")) == "tenant/acme running\n"
        running = json.loads(ok(cli("tenant get acme -o json")))
        assert running["status"] == "running"
        assert running["endpoint"]
        wide = ok(cli("tenant list -o wide")).splitlines()[1].split()
        assert wide[:3] == ["acme", "running", running["endpoint"]]

        text = ok(cli("tenant describe acme"))
        assert "Buffered:      0" in text
        assert "Dead Letters:  0" in text
        assert ok(cli("tenant sleep acme --dry-run")) == (
            "tenant/acme asleep (dry run; now running)\n"
        )
        assert json.loads(ok(cli("tenant get acme -o json")))["status"] == "running"

        logs = ok(cli("logs acme"))
        assert logs.strip(), "the agent has written no log"
        tail = ok(cli("logs acme --tail 1"))
        assert tail.splitlines() == logs.splitlines()[-1:]
        assert ok(cli("logs acme --since 1h")).splitlines()[:1] == logs.splitlines()[:1]

        _follow_until_ctrl_c(agent_daemon)

        assert ok(cli("tenant sleep acme")) == "tenant/acme asleep\n"
        asleep = json.loads(ok(cli("tenant get acme -o json")))
        assert (asleep["status"], asleep["endpoint"]) == ("idle", None)
        events = ok(cli("tenant describe acme")).split("Events:\n")[1].splitlines()[1:]
        kinds = [line.split()[1] for line in events]
        assert kinds[0] == "created"
        assert kinds[-4:] == ["waking", "running", "stopping", "idle"]

        ok(cli("tenant suspend acme"))
        failed(cli("tenant wake acme --wait"), 1, "acme")  # on hold: refused, stays suspended
        assert api(agent_daemon, "GET", "/v1/tenants/acme")[1]["status"] == "suspended"
    finally:
        ok(cli("tenant delete acme"))


def _follow_until_ctrl_c(daemon: DaemonProc) -> None:
    """`otm logs -f` streams until Ctrl-C, which ends it quietly (exit 130)."""
    env = project_env(OTM_DATA_DIR=str(daemon.data_dir))
    with interruptible("-m", "otm", "logs", "acme", "-f", env=env) as process:
        assert process.stdout is not None
        stdout = process.stdout
        first: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: first.put(stdout.readline()), daemon=True).start()
        assert first.get(timeout=15).strip(), "no log line streamed"
        assert process.poll() is None  # still following
        interrupt_quietly(process)
