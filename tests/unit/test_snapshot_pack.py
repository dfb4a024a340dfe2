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
