"""warm_blockers: what in a tenant's global database a warm bind would lose (real SQLite files,
with the columns OpenClaw 2026.9.6 uses)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.agent.state import OPENCLAW_GLOBAL_DB, STUB_GLOBAL_DB, warm_blockers


def _openclaw_db(state: Path) -> sqlite3.Connection:
    path = state / OPENCLAW_GLOBAL_DB
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE channel_ingress_events (queue_name TEXT, event_id TEXT, status TEXT,
            completed_at INTEGER, failed_at INTEGER);
        CREATE TABLE cron_jobs (job_id TEXT, declaration_key TEXT, enabled INTEGER);
        """
    )
    return db


def test_a_fresh_or_settled_state_blocks_nothing(tmp_path: Path) -> None:
    assert warm_blockers(tmp_path) == []  # never ran: nothing to lose
    with _openclaw_db(tmp_path) as db:
        db.execute("INSERT INTO channel_ingress_events VALUES ('q', '1', 'completed', 5, NULL)")
        db.execute("INSERT INTO channel_ingress_events VALUES ('q', '2', 'failed', NULL, 6)")
        # Jobs the gateway declares itself for every agent (measured on 2026.9.6).
        db.execute("INSERT INTO cron_jobs VALUES ('a', 'heartbeat:main', 0)")
        db.execute("INSERT INTO cron_jobs VALUES ('b', 'skill-collection-review:main', 1)")
        db.execute("INSERT INTO cron_jobs VALUES ('c', NULL, 0)")  # a user's, disabled
    assert warm_blockers(tmp_path) == []


def test_unprocessed_updates_and_user_cron_jobs_block(tmp_path: Path) -> None:
    with _openclaw_db(tmp_path) as db:
        db.execute("INSERT INTO channel_ingress_events VALUES ('q', '3', 'pending', NULL, NULL)")
        db.execute("INSERT INTO cron_jobs VALUES ('d', NULL, 1)")
    assert warm_blockers(tmp_path) == [
        "1 unprocessed ingress updates in state/openclaw.sqlite",
        "1 cron jobs in state/openclaw.sqlite",
    ]


def test_the_stand_in_agents_spool_counts_too(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / STUB_GLOBAL_DB) as db:
        db.execute("CREATE TABLE updates (update_id INTEGER, done INTEGER)")
        db.execute("INSERT INTO updates VALUES (1, 1)")
    assert warm_blockers(tmp_path) == []
    with sqlite3.connect(tmp_path / STUB_GLOBAL_DB) as db:
        db.execute("INSERT INTO updates VALUES (2, 0)")
    assert warm_blockers(tmp_path) == ["1 unprocessed ingress updates in agent-stub.sqlite"]


def test_a_database_it_cannot_read_blocks(tmp_path: Path) -> None:
    (tmp_path / STUB_GLOBAL_DB).write_bytes(b"not a database at all, just bytes" * 100)
    [blocker] = warm_blockers(tmp_path)
    assert blocker.startswith("agent-stub.sqlite: unreadable")


def test_an_older_schema_without_the_tables_blocks_nothing(tmp_path: Path) -> None:
    path = tmp_path / OPENCLAW_GLOBAL_DB
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x INTEGER)")
    assert warm_blockers(tmp_path) == []
