"""`otm tenant usage` and `otm tenant rotate-key` against a real daemon."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from daemon.model_gateway.usage import UsageStore
from tests.cli.conftest import Cli, api, failed, ok
from tests.support.daemon_proc import DaemonProc


def record(redis_url: str, tenant: str, prompt: int, completion: int) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await UsageStore(client).record(
                tenant, "stub-model", prompt_tokens=prompt, completion_tokens=completion
            )
        finally:
            await client.aclose()

    asyncio.run(run())


def test_usage_json_and_table(cli: Cli, clean_daemon: DaemonProc, cli_redis: str) -> None:
    for tid in ("ua", "ub"):
        assert (
            api(clean_daemon, "POST", "/v1/tenants", {"tenant_id": tid, "bot_token": "1:t"})[0]
            == 201
        )
    record(cli_redis, "ua", 10, 5)
    record(cli_redis, "ua", 1, 2)

    doc = json.loads(ok(cli("tenant usage ua --since 24h -o json")))
    [item] = doc["items"]
    assert (item["tenant_id"], item["requests"], item["prompt_tokens"]) == ("ua", 2, 11)
    assert (item["completion_tokens"], item["total_tokens"], item["cost_usd"]) == (7, 18, None)
    assert item["models"]["stub-model"]["requests"] == 2

    lines = ok(cli("tenant usage")).splitlines()
    assert lines[0].split() == ["TENANT", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "COST"]
    assert lines[1].split() == ["ua", "2", "11", "7", "18", "-"]
    assert lines[2].split() == ["ub", "0", "0", "0", "0", "-"]


def test_usage_bad_input(cli: Cli, clean_daemon: DaemonProc) -> None:
    failed(cli("tenant usage --since yesterday"), 2, "--since")
    failed(cli("tenant usage Bad_Id"), 2, "invalid tenant id")
    failed(cli("tenant usage nobody"), 1, "nobody")


def test_rotate_key(cli: Cli, clean_daemon: DaemonProc) -> None:
    assert (
        api(clean_daemon, "POST", "/v1/tenants", {"tenant_id": "rk", "bot_token": "1:t"})[0] == 201
    )
    assert ok(cli("tenant rotate-key rk")).strip() == "tenant/rk model key rotated"
    status, tenant = api(clean_daemon, "GET", "/v1/tenants/rk")
    assert status == 200 and tenant["has_model_key"] and "model_key_id" not in tenant
    failed(cli("tenant rotate-key nobody"), 1, "nobody")
