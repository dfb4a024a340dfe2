"""A state dir as one tar.gz, and back: the snapshot format of both state stores.

SQLite databases are read through SQLite (its online backup), never copied as bytes: a copy
of a database some agent is writing (a periodic snapshot of a running agent), or of one whose
last transactions still sit in its write-ahead log (an agent that was killed), would be torn
or stale. Their ``-wal``/``-shm``/``-journal`` side files are therefore never packed.
"""

from __future__ import annotations

import io
import sqlite3
import tarfile
import tempfile
from collections.abc import Collection
from pathlib import Path

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
ORIGIN_MEMBER = ".otm-snapshot-origin"
"""A member a restored snapshot carries (where it came from; it also makes the restored
snapshot a new generation). Never unpacked into a state dir."""
SQLITE_BUSY_TIMEOUT_S = 10.0


def _is_sqlite_side_file(path: Path) -> bool:
    return any(
        path.name.endswith(suffix + side)
        for suffix in SQLITE_SUFFIXES
        for side in SQLITE_SIDE_FILES
    )


def _is_sqlite_header(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def consistent_sqlite_copy(src: Path, dest: Path) -> bool:
    """Copy the database ``src`` to ``dest`` as one committed state: a read transaction
    first (bounded by the busy timeout), then SQLite's online backup inside it (pages as they
    are, so tables of extension modules copy too; the write-ahead log is read as well).
    False if ``src`` is not a (readable) database, to be copied as bytes;
    sqlite3.OperationalError (locked past the busy timeout) propagates: better no snapshot
    than a torn one. (The read transaction first: Python's backup retries a busy source
    forever.)"""
    if not _is_sqlite_header(src):
        return False
    # Not read-only: a reader of a write-ahead-log database may need to create its -shm.
    source = sqlite3.connect(src, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
    try:
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read lock
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
    except sqlite3.OperationalError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            return False
        raise
    except sqlite3.DatabaseError:  # "file is not a database", a malformed image
        return False
    finally:
        source.close()
    return True


def _excluded(arcname: str, exclude: Collection[str]) -> bool:
    return any(arcname == sub or arcname.startswith(sub + "/") for sub in exclude)


def pack_dir(src_dir: Path, exclude: Collection[str] = ()) -> bytes:
    """``src_dir`` as a tar.gz, without the sub-trees named in ``exclude`` (relative paths)."""
    buffer = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="otm-pack-") as scratch,
        tarfile.open(fileobj=buffer, mode="w:gz") as tar,
    ):
        for path in sorted(src_dir.rglob("*")):
            # Lock files are per-process and must not be restored elsewhere.
            if not path.is_file() or path.name.endswith(".lock") or _is_sqlite_side_file(path):
                continue
            arcname = path.relative_to(src_dir).as_posix()
            if _excluded(arcname, exclude):
                continue
            if path.name.endswith(SQLITE_SUFFIXES):
                copy = Path(scratch) / "db"
                copy.unlink(missing_ok=True)
                if consistent_sqlite_copy(path, copy):
                    info = tar.gettarinfo(copy, arcname=arcname)
                    info.mtime, info.mode = int(path.stat().st_mtime), path.stat().st_mode
                    with open(copy, "rb") as fh:
                        tar.addfile(info, fh)
                    continue
            tar.add(path, arcname=arcname, recursive=False)
    return buffer.getvalue()


def unpack_into(data: bytes, dest_dir: Path) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name != ORIGIN_MEMBER]
        tar.extractall(dest_dir, members=members, filter="data")


def with_origin(data: bytes, origin: str) -> bytes:
    """The snapshot ``data`` again, carrying ``origin`` (a restore's record of its source):
    the same files, new bytes, hence a new generation."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src,
        tarfile.open(fileobj=buffer, mode="w:gz") as dest,
    ):
        for member in src.getmembers():
            if member.name == ORIGIN_MEMBER:
                continue
            dest.addfile(member, src.extractfile(member) if member.isfile() else None)
        payload = origin.encode()
        info = tarfile.TarInfo(ORIGIN_MEMBER)
        info.size = len(payload)
        dest.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()
