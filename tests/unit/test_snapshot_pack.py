"""The snapshot packer's SQLite rule: databases go through SQLite, never as torn bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.adapters import snapshot_pack
from daemon.adapters.snapshot_pack import pack_dir, unpack_into


def test_a_database_locked_past_the_busy_timeout_fails_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_pack, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    src = tmp_path / "src"
    src.mkdir()
    writer = sqlite3.connect(src / "agent.sqlite", isolation_level=None)
    try:
        writer.execute("CREATE TABLE t (x)")
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            pack_dir(src)
    finally:
        writer.close()


def test_files_named_like_databases_that_are_not_are_packed_as_they_are(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.db").write_bytes(b"just text, not SQLite")
    (src / "fake.sqlite").write_bytes(b"SQLite format 3\x00 but then garbage" * 10)
    (src / "real.sqlite-wal").write_bytes(b"a log without its database")
    dest = tmp_path / "dest"
    unpack_into(pack_dir(src), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["fake.sqlite", "notes.db"]
    assert (dest / "notes.db").read_bytes() == b"just text, not SQLite"
    assert (dest / "fake.sqlite").read_bytes() == (src / "fake.sqlite").read_bytes()


def test_a_database_whose_schema_needs_functions_we_lack_is_still_packed(tmp_path: Path) -> None:
    """Real OpenClaw's schema calls SQL functions newer than some hosts' SQLite
    (``octet_length``): the copy moves pages and never re-evaluates the schema (a rebuild
    such as VACUUM INTO fails with "no such function")."""
    src = tmp_path / "src"
    src.mkdir()
    writer = sqlite3.connect(src / "openclaw.sqlite")
    try:
        writer.create_function("agent_len", 1, len, deterministic=True)
        writer.execute("CREATE TABLE notes (body TEXT, size INT AS (agent_len(body)) STORED)")
        writer.execute("INSERT INTO notes (body) VALUES ('remember me')")
        writer.commit()
    finally:
        writer.close()
    dest = tmp_path / "dest"
    unpack_into(pack_dir(src), dest)
    copy = sqlite3.connect(dest / "openclaw.sqlite")
    try:
        assert copy.execute("SELECT body, size FROM notes").fetchall() == [("remember me", 11)]
    finally:
        copy.close()
