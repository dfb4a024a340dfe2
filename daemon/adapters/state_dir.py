"""StateStore on a local directory: the embedded default.

Layout mirrors the S3 adapter: ``{root}/tenants/{id}/{key}``. Writes go to a
temporary file then rename, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from daemon.adapters.state_keys import SnapshotsOnKeys, check_key
from daemon.model import validate_tenant_id


class DirStateStore(SnapshotsOnKeys):
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _tenant_dir(self, tenant_id: str) -> Path:
        return self.root / "tenants" / validate_tenant_id(tenant_id)

    def _path(self, tenant_id: str, key: str) -> Path:
        return self._tenant_dir(tenant_id) / check_key(key)

    async def put(self, tenant_id: str, key: str, data: bytes) -> None:
        path = self._path(tenant_id, key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)

        await asyncio.to_thread(write)

    async def get(self, tenant_id: str, key: str) -> bytes:
        path = self._path(tenant_id, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # A key below a file, or a "directory" key: absent, as in S3.
            raise KeyError(key) from None

    async def list(self, tenant_id: str, prefix: str = "") -> list[str]:
        base = self._tenant_dir(tenant_id)

        def walk() -> list[str]:
            if not base.exists():
                return []
            keys = (
                str(p.relative_to(base).as_posix())
                for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".tmp-")
            )
            return sorted(k for k in keys if k.startswith(prefix))

        return await asyncio.to_thread(walk)

    async def delete(self, tenant_id: str, key: str) -> None:
        path = self._path(tenant_id, key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def delete_tenant(self, tenant_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._tenant_dir(tenant_id), True)

    async def close(self) -> None:
        return None
