"""What both StateStore adapters share: the key rule and snapshots stored as one object.

Its own module so the directory and S3 adapters stay unaware of each other.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from pathlib import Path, PurePosixPath

SNAPSHOT_KEY = "snapshots/latest.tar.gz"
PROBE_KEY = ".otm-probe"
"""Written then deleted by the readiness probe: proves the daemon can write, not only list."""
NO_SNAPSHOT = "none"
"""The generation of a tenant without a snapshot (a new tenant)."""


class StaleSnapshot(RuntimeError):
    """A save whose run did not start from the tenant's current snapshot: refused, so a
    run that never saw the latest state (an interrupted restore) cannot replace it."""


def snapshot_generation(data: bytes) -> str:
    """A snapshot's identity: the digest of its bytes (the same on every store)."""
    return hashlib.sha256(data).hexdigest()[:32]


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

    async def snapshot_generation(self, tenant_id: str) -> str:
        """The generation of the tenant's latest snapshot, NO_SNAPSHOT if none."""
        try:
            return snapshot_generation(await self.get(tenant_id, SNAPSHOT_KEY))
        except KeyError:
            return NO_SNAPSHOT

    async def restore_generation(self, tenant_id: str, dest_dir: Path) -> str:
        """Unpack the latest snapshot into ``dest_dir``; its generation (NO_SNAPSHOT if none)."""
        try:
            data = await self.get(tenant_id, SNAPSHOT_KEY)
        except KeyError:
            await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)
            return NO_SNAPSHOT
        await asyncio.to_thread(unpack_into, data, dest_dir)
        return snapshot_generation(data)

    async def save_snapshot_over(self, tenant_id: str, src_dir: Path, parent: str) -> int:
        """Save ``src_dir`` only if the latest snapshot is still ``parent`` (the one its run
        started from); StaleSnapshot otherwise. Callers hold the tenant (wake lock / the
        only daemon on its run dirs), so check-then-put does not race another saver."""
        current = await self.snapshot_generation(tenant_id)
        if current != parent:
            raise StaleSnapshot(
                f"tenant {tenant_id!r}: run started from snapshot {parent}, "
                f"latest is {current}; not replacing it"
            )
        return await self.save_snapshot(tenant_id, src_dir)

    async def probe_write(self) -> None:
        """Write and delete a probe object: what a wake and a sleep need (raises if not)."""
        await self.put_probe(PROBE_KEY, b"probe")
        await self.delete_probe(PROBE_KEY)

    async def write_problem(self) -> str:
        """Why the daemon cannot write to the store ("" when it can): readiness, status."""
        try:
            await self.probe_write()
        except Exception as exc:
            return f"state store not writable: {type(exc).__name__}: {exc}"
        return ""

    async def put_probe(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    async def delete_probe(self, key: str) -> None:
        raise NotImplementedError
