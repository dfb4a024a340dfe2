"""Admin tokens while Redis is down: the configured token keeps the admin API usable (the
registry-only endpoints answer), a named token is refused (503: it cannot be checked), and
a revocation this replica saw before the outage still holds; an audit entry Redis cannot
take goes to the log (and a counter) instead."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from tests.api.conftest import ADMIN_TOKEN
from tests.support.admin_app import running_admin_app
from tests.support.redis_cluster import BACKENDS
from tests.support.servers import running_redis

# The Redis tests also run on a Redis Cluster (tests/conftest.py parametrizes redis_backend).
REDIS_BACKENDS = BACKENDS


async def test_redis_outage_keeps_the_configured_token_and_its_revocation(
    tmp_path: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_redis(tmp_path / "redis", durable=True) as server:
        async with running_admin_app(server.url, data_dir, ADMIN_TOKEN) as client:
            resp = await client.post("/v1/tokens", json={"name": "ci"})
            assert resp.status == 201
            named = {"Authorization": f"Bearer {(await resp.json())['token']}"}

            await asyncio.to_thread(server.stop)
            try:
                assert (await client.get("/v1/tenants")).status == 200
                resp = await client.get("/v1/tenants", headers=named)
                assert resp.status == 503
                assert "Redis" in (await resp.json())["error"]
                with caplog.at_level(logging.ERROR, logger="daemon.admin.audit"):
                    assert (await client.delete("/v1/tenants/ghost")).status == 404
            finally:
                await asyncio.to_thread(server.start)
            # The entry Redis could not take is in the log, and counted.
            lost = [r for r in caplog.records if "audit entry not stored" in r.getMessage()]
            assert len(lost) == 1
            message = lost[0].getMessage()
            entry = json.loads(message[message.index("{") :])
            assert (entry["actor"], entry["action"], entry["tenant"], entry["status"]) == (
                "admin",
                "tenant.delete",
                "ghost",
                404,
            )
            metrics = await (await client.get("/metrics")).text()
            assert "otm_audit_entries_not_stored_total 1.0" in metrics

            assert (await client.delete("/v1/tokens/admin", headers=named)).status == 204
            assert (await client.get("/v1/tenants")).status == 401
            await asyncio.to_thread(server.stop)
            try:
                assert (await client.get("/v1/tenants")).status == 401
            finally:
                await asyncio.to_thread(server.start)
            assert (await client.get("/v1/tenants", headers=named)).status == 200
