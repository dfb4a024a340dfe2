"""StateStore on a local directory: the embedded default.

Layout mirrors the S3 adapter: ``{root}/tenants/{id}/{key}``. Writes go to a
temporary file then rename, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import shutil
import tempfile
from pathlib import Path

from daemon.adapters.state_keys import SnapshotsOnKeys, check_key
from daemon.model import validate_tenant_id
from daemon.ports import DEFAULT_RETENTION, SnapshotRetention


def walk_keys(base: Path, prefix: str) -> list[str]:
    """The keys of the files under ``base`` that start with ``prefix``, sorted."""
    if not base.exists():
        return []
    keys = (
        str(p.relative_to(base).as_posix())
        for p in base.rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-")
    )
    return sorted(k for k in keys if k.startswith(prefix))


class DirStateStore(SnapshotsOnKeys):
    def __init__(self, root: Path, *, retention: SnapshotRetention = DEFAULT_RETENTION) -> None:
        self.root = root
        self.retention = retention
        root.mkdir(parents=True, exist_ok=True)

    def _tenant_dir(self, tenant_id: str) -> Path:
        return self.root / "tenants" / validate_tenant_id(tenant_id)

    def _path(self, tenant_id: str, key: str) -> Path:
        return self._tenant_dir(tenant_id) / check_key(key)

    def _write_file(self, path: Path, data: bytes) -> None:
        """New file then rename: a crash never leaves a half-written one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    async def put(self, tenant_id: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write_file, self._path(tenant_id, key), data)

    async def get(self, tenant_id: str, key: str) -> bytes:
        path = self._path(tenant_id, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # A key below a file, or a "directory" key: absent, as in S3.
            raise KeyError(key) from None

    async def list(self, tenant_id: str, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(walk_keys, self._tenant_dir(tenant_id), prefix)

    async def list_sized(self, tenant_id: str, prefix: str) -> builtins.list[tuple[str, int]]:
        base = self._tenant_dir(tenant_id)

        def sizes() -> list[tuple[str, int]]:
            found = []
            for key in walk_keys(base, prefix):
                try:
                    found.append((key, (base / key).stat().st_size))
                except FileNotFoundError:  # pruned meanwhile
                    continue
            return found

        return await asyncio.to_thread(sizes)

    async def delete(self, tenant_id: str, key: str) -> None:
        path = self._path(tenant_id, key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def delete_tenant(self, tenant_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._tenant_dir(tenant_id), True)

    async def put_probe(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write_file, self.root / check_key(key), data)

    async def delete_probe(self, key: str) -> None:
        await asyncio.to_thread((self.root / check_key(key)).unlink, missing_ok=True)

    async def close(self) -> None:
        return None
