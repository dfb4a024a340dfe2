"""One "daemon replica" in its own process, racing for a tenant on a shared
SQLite file. Driven over stdin/stdout by test_registry_adapters.py: for each
``go`` line it tries the idle→provisioning claim once and prints ``won`` or
``lost``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import ConditionFailed, TenantStatus


async def main(db_path: str, tenant_id: str) -> int:
    registry = SqliteRegistry(Path(db_path))
    try:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            try:
                await registry.update(
                    tenant_id, if_status={TenantStatus.IDLE}, status=TenantStatus.PROVISIONING
                )
            except ConditionFailed:
                print("lost", flush=True)
            else:
                print("won", flush=True)
    finally:
        await registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
