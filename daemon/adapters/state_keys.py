"""What both StateStore adapters share: the key rule and snapshots stored as one object.

Its own module so the directory and S3 adapters stay unaware of each other.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path, PurePosixPath

SNAPSHOT_KEY = "snapshots/latest.tar.gz"


def check_key(key: str) -> str:
    """Keys are relative POSIX paths without '..' (they come from tenant dirs)."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise ValueError(f"invalid state key {key!r}")
    return str(path)


def pack_dir(src_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(src_dir.rglob("*")):
            # Lock files are per-process and must not be restored elsewhere.
            if path.is_file() and not path.name.endswith(".lock"):
                tar.add(path, arcname=str(path.relative_to(src_dir)), recursive=False)
    return buffer.getvalue()


def unpack_into(data: bytes, dest_dir: Path) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest_dir, filter="data")


class SnapshotsOnKeys:
    """Snapshots as one tar.gz object under SNAPSHOT_KEY, on any store's put/get."""

    async def put(self, tenant_id: str, key: str, data: bytes) -> None:
        raise NotImplementedError

    async def get(self, tenant_id: str, key: str) -> bytes:
        raise NotImplementedError

    async def save_snapshot(self, tenant_id: str, src_dir: Path) -> int:
        data = await asyncio.to_thread(pack_dir, src_dir)
        await self.put(tenant_id, SNAPSHOT_KEY, data)
        return len(data)

    async def restore_snapshot(self, tenant_id: str, dest_dir: Path) -> bool:
        try:
            data = await self.get(tenant_id, SNAPSHOT_KEY)
        except KeyError:
            return False
        await asyncio.to_thread(unpack_into, data, dest_dir)
        return True
