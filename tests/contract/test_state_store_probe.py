"""The state store's health probe writes and deletes a probe object (what every sleep
needs), so a store that can be listed but not written is reported with its reason."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from daemon.adapters.state_dir import DirStateStore
from daemon.adapters.state_s3 import S3StateStore

BUCKET = "otm-probe"
REGION = "us-east-1"


def read_only_fs(path: Path, data: bytes) -> None:
    """What writes on a read-only file system (or a chmod-ed dir, for non-root) raise."""
    raise OSError(errno.EROFS, "Read-only file system", str(path))


async def test_directory_store_probe_writes_and_cleans_up(tmp_path: Path) -> None:
    store = DirStateStore(tmp_path / "state")
    assert await store.write_problem() == ""
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == []


async def test_directory_store_that_refuses_writes_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirStateStore(tmp_path / "state")
    monkeypatch.setattr(store, "_write_file", read_only_fs)
    problem = await store.write_problem()
    assert problem.startswith("state store not writable: OSError: [Errno 30] Read-only")


def deny_put_object(**_: Any) -> tuple[Any, dict[str, Any]]:
    """A bucket policy that denies the daemon's PutObject: S3 answers 403 AccessDenied
    (listing still works, which is all the old probe checked)."""

    class Forbidden:
        status_code = 403
        headers: dict[str, str] = {}

    return Forbidden(), {
        "Error": {"Code": "AccessDenied", "Message": "Access Denied"},
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }


async def test_s3_store_denied_put_object_is_reported(moto_url: str) -> None:
    store = await S3StateStore.open(BUCKET, REGION, endpoint_url=moto_url)
    try:
        assert await store.write_problem() == ""
        assert await store.ping() is True
        keys = store.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        assert [k["Key"] for k in keys] == []  # the probe object is deleted again
        store.client.meta.events.register("before-call.s3.PutObject", deny_put_object)
        problem = await store.write_problem()
        assert "AccessDenied" in problem and "PutObject" in problem, problem
        assert await store.ping() is False
    finally:
        await store.close()
