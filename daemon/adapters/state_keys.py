"""What both StateStore adapters share: the key rule and snapshots stored as one object.

Its own module so the directory and S3 adapters stay unaware of each other.

Snapshot history: every save also stores its tarball under
``snapshots/history/<UTC time>-<trigger>.tar.gz``, and running agents add periodic ones; the
retention (count and age, never the newest) is applied after each addition. A restore puts
the chosen snapshot back as the latest, repacked with its origin: a new generation, so
the fencing of ``save_snapshot_over`` holds across it.

Kubernetes agents keep no tarball: their sync sidecar mirrors files to the ``state/`` and
``workspace/`` keys (TREE_PREFIXES). Their history entries pack that tree (``record_tree``)
in the same tar format (members ``state/...``, ``workspace/...``), and a restore rewrites
the tree from one (``restore_tree``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from daemon.adapters.snapshot_pack import pack_dir, unpack_into, with_origin
from daemon.ports import DEFAULT_RETENTION, SnapshotInfo, SnapshotRetention

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "snapshots/latest.tar.gz"
HISTORY_PREFIX = "snapshots/history/"
TREE_PREFIXES = ("state/", "workspace/")
"""The keys a Kubernetes agent's sync sidecar mirrors its files to (daemon/kube/pod_scripts.py)."""
_HISTORY_TIME = "%Y%m%dT%H%M%S.%fZ"
_HISTORY_KEY = re.compile(r"snapshots/history/(\d{8}T\d{6}\.\d{6}Z)-([a-z]+)\.tar\.gz")
TRIGGERS = ("sleep", "periodic", "restore")
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


def history_key(taken_at: datetime, trigger: str) -> str:
    """``snapshots/history/<UTC time>-<trigger>.tar.gz``: sorts by time, parses back."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown snapshot trigger {trigger!r}")
    return f"{HISTORY_PREFIX}{taken_at.astimezone(UTC).strftime(_HISTORY_TIME)}-{trigger}.tar.gz"


def parse_history_key(key: str, size: int) -> SnapshotInfo | None:
    match = _HISTORY_KEY.fullmatch(key)
    if match is None:
        return None
    taken_at = datetime.strptime(match[1], _HISTORY_TIME).replace(tzinfo=UTC)
    return SnapshotInfo(key=key, taken_at=taken_at, trigger=match[2], size=size)


def expired(history: list[SnapshotInfo], retention: SnapshotRetention, now: datetime) -> list[str]:
    """Keys of ``history`` (newest first) the retention drops as of ``now``: beyond the
    count, or older than the age limit; never the newest one."""
    drop = []
    for index, snapshot in enumerate(history):
        too_many = index >= max(retention.keep, 1)
        too_old = (
            retention.max_age_s > 0
            and (now - snapshot.taken_at).total_seconds() > retention.max_age_s
        )
        if index > 0 and (too_many or too_old):
            drop.append(snapshot.key)
    return drop


async def _restored(data: bytes, key: str) -> bytes:
    """History entry ``key`` (``data``) repacked with its origin: what a restore records."""
    origin = json.dumps({"restored_from": key, "at": datetime.now(UTC).isoformat()})
    return await asyncio.to_thread(with_origin, data, origin)


def _unpacked_files(data: bytes) -> dict[str, bytes]:
    """The files of snapshot ``data``, by path."""
    with tempfile.TemporaryDirectory(prefix="otm-tree-") as scratch:
        root = Path(scratch)
        unpack_into(data, root)
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }


def _write_below(root: Path, key: str, data: bytes) -> None:
    path = root / check_key(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def check_key(key: str) -> str:
    """Keys are relative POSIX paths without '..' (they come from tenant dirs)."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise ValueError(f"invalid state key {key!r}")
    return str(path)


class SnapshotsOnKeys:
    """Snapshots as tar.gz objects on any store's put/get: the latest under SNAPSHOT_KEY,
    the history under HISTORY_PREFIX."""

    retention: SnapshotRetention = DEFAULT_RETENTION

    async def put(self, tenant_id: str, key: str, data: bytes) -> None:
        raise NotImplementedError

    async def get(self, tenant_id: str, key: str) -> bytes:
        raise NotImplementedError

    async def delete(self, tenant_id: str, key: str) -> None:
        raise NotImplementedError

    async def list_sized(self, tenant_id: str, prefix: str) -> list[tuple[str, int]]:
        """(key, size in bytes) of the tenant's keys starting with ``prefix``."""
        raise NotImplementedError

    async def _tree_keys(self, tenant_id: str) -> list[str]:
        return [
            key for prefix in TREE_PREFIXES for key, _ in await self.list_sized(tenant_id, prefix)
        ]

    async def record_tree(self, tenant_id: str, *, trigger: str) -> SnapshotInfo | None:
        """Pack the tenant's file tree (its TREE_PREFIXES keys) into the history; None when
        the retention keeps no history."""
        if self.retention.keep <= 0:
            return None
        with tempfile.TemporaryDirectory(prefix="otm-tree-") as scratch:
            root = Path(scratch)
            for key in await self._tree_keys(tenant_id):
                data = await self.get(tenant_id, key)
                await asyncio.to_thread(_write_below, root, key, data)
            packed = await asyncio.to_thread(pack_dir, root)
        added = await self._add_to_history(tenant_id, packed, trigger)
        return None if added is None else parse_history_key(added, len(packed))

    async def restore_tree(self, tenant_id: str, key: str) -> SnapshotInfo:
        """Rewrite the tenant's file tree from history entry ``key`` (every file put, every
        tree key not in it deleted) and add a "restore" entry. The caller holds the tenant
        asleep: nothing syncs meanwhile. KeyError if ``key`` is not in the history."""
        source = parse_history_key(key, 0)
        if source is None:
            raise KeyError(key)
        data = await self.get(tenant_id, key)
        files = await asyncio.to_thread(_unpacked_files, data)
        for name, content in files.items():
            if name.startswith(TREE_PREFIXES):
                await self.put(tenant_id, name, content)
        for stale in await self._tree_keys(tenant_id):
            if stale not in files:
                await self.delete(tenant_id, stale)
        await self._add_to_history(tenant_id, await _restored(data, key), "restore")
        return dataclasses.replace(source, size=len(data))

    async def save_snapshot(self, tenant_id: str, src_dir: Path, *, trigger: str = "sleep") -> int:
        data = await asyncio.to_thread(pack_dir, src_dir)
        # History first: a crash between the two leaves an extra history entry, never a
        # latest snapshot missing from the history.
        await self._add_to_history(tenant_id, data, trigger)
        await self.put(tenant_id, SNAPSHOT_KEY, data)
        return len(data)

    async def _add_to_history(self, tenant_id: str, data: bytes, trigger: str) -> str | None:
        if self.retention.keep <= 0:
            return None
        now = datetime.now(UTC)
        key = history_key(now, trigger)
        await self.put(tenant_id, key, data)
        try:
            await self.prune_snapshots(tenant_id, now)
        except Exception as exc:  # housekeeping: the next addition prunes again
            log.warning("pruning the snapshots of %s failed: %s", tenant_id, exc)
        return key

    async def record_snapshot(
        self, tenant_id: str, src_dir: Path, *, trigger: str, exclude: Collection[str] = ()
    ) -> SnapshotInfo | None:
        if self.retention.keep <= 0:
            return None
        data = await asyncio.to_thread(pack_dir, src_dir, exclude)
        key = await self._add_to_history(tenant_id, data, trigger)
        return None if key is None else parse_history_key(key, len(data))

    async def list_snapshots(self, tenant_id: str) -> list[SnapshotInfo]:
        found = (
            parse_history_key(key, size)
            for key, size in await self.list_sized(tenant_id, HISTORY_PREFIX)
        )
        return sorted(
            (info for info in found if info is not None), key=lambda i: i.key, reverse=True
        )

    async def prune_snapshots(self, tenant_id: str, now: datetime) -> list[str]:
        drop = expired(await self.list_snapshots(tenant_id), self.retention, now)
        for key in drop:
            await self.delete(tenant_id, key)
        return drop

    async def promote_snapshot(self, tenant_id: str, key: str) -> SnapshotInfo:
        source = parse_history_key(key, 0)
        if source is None:
            raise KeyError(key)
        data = await self.get(tenant_id, key)
        restored = await _restored(data, key)
        await self._add_to_history(tenant_id, restored, "restore")
        await self.put(tenant_id, SNAPSHOT_KEY, restored)
        return dataclasses.replace(source, size=len(data))

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

    async def save_snapshot_over(
        self, tenant_id: str, src_dir: Path, parent: str, *, trigger: str = "sleep"
    ) -> int:
        """Save ``src_dir`` only if the latest snapshot is still ``parent`` (the one its run
        started from); StaleSnapshot otherwise. Callers hold the tenant (wake lock / the
        only daemon on its run dirs), so check-then-put does not race another saver."""
        current = await self.snapshot_generation(tenant_id)
        if current != parent:
            raise StaleSnapshot(
                f"tenant {tenant_id!r}: run started from snapshot {parent}, "
                f"latest is {current}; not replacing it"
            )
        return await self.save_snapshot(tenant_id, src_dir, trigger=trigger)

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
