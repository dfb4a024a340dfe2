"""Adapter-specific proofs behind the registry contract: DynamoDB's table
layout and index use, and SQLite's cross-process conditional writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from daemon.adapters.registry_dynamodb import STATUS_INDEX, DynamoRegistry
from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import Tenant, TenantStatus, tenant_to_record
from tests.contract.conftest import REGION, TABLE
from tests.support.servers import project_env, python_cmd

RUNNING = TenantStatus.RUNNING


@pytest.fixture
async def dynamo(moto_url: str) -> Any:
    registry = await DynamoRegistry.open(TABLE, REGION, moto_url, page_size=2)
    try:
        yield registry
    finally:
        await registry.close()


@pytest.fixture
def raw_dynamodb(moto_url: str) -> Iterator[Any]:
    """A plain boto3 client, to look at the table behind the adapter's back."""
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    try:
        yield client
    finally:
        client.close()


def record_calls(registry: DynamoRegistry) -> list[tuple[str, dict[str, Any]]]:
    """Every DynamoDB operation the registry's client sends from now on."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    registry.client.meta.events.register("provide-client-params.dynamodb", hook)
    return calls


async def test_table_has_a_status_index(dynamo: DynamoRegistry, raw_dynamodb: Any) -> None:
    table = raw_dynamodb.describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "tenant_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == STATUS_INDEX == "status-index"
    # The schema docs/setup-guide.md creates, so either side may create the table.
    assert index["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "last_active_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"]["ProjectionType"] == "ALL"


async def test_list_by_status_queries_the_index_page_by_page(dynamo: DynamoRegistry) -> None:
    for i in range(5):
        await dynamo.create(Tenant(tenant_id=f"run-{i}", status=RUNNING))
    for i in range(2):
        await dynamo.create(Tenant(tenant_id=f"idle-{i}"))

    calls = record_calls(dynamo)
    running = await dynamo.list(status=RUNNING)
    assert [t.tenant_id for t in running] == [f"run-{i}" for i in range(5)]
    assert {name for name, _ in calls} == {"Query"}
    assert all(params["IndexName"] == STATUS_INDEX for _, params in calls)
    assert len(calls) >= 3  # 5 items in pages of 2
    assert "ExclusiveStartKey" in calls[1][1]

    calls.clear()
    assert len(await dynamo.list()) == 7
    assert {name for name, _ in calls} == {"Scan"}
    assert len(calls) >= 4


async def test_items_are_native_dynamodb_types(dynamo: DynamoRegistry, raw_dynamodb: Any) -> None:
    await dynamo.create(Tenant(tenant_id="typed", labels={"tier": "gold"}, idle_timeout_s=300))
    item = raw_dynamodb.get_item(TableName=TABLE, Key={"tenant_id": {"S": "typed"}})["Item"]
    assert item["version"] == {"N": "1"}
    assert item["idle_timeout_s"] == {"N": "300"}
    assert item["labels"] == {"M": {"tier": {"S": "gold"}}}
    assert item["status"] == {"S": "idle"}
    # None fields are absent, not NULL; timestamps are fixed-width UTC strings.
    assert "endpoint" not in item and "pod_name" not in item
    assert item["last_active_at"]["S"].endswith("+00:00")
    assert len(item["last_active_at"]["S"]) == len("2026-01-01T00:00:00.000000+00:00")


async def test_open_adds_a_missing_status_index(moto_url: str, raw_dynamodb: Any) -> None:
    # A table made by hand without the index (as the system we replace did locally).
    raw_dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "tenant_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "tenant_id", "KeyType": "HASH"}],
    )
    registry = await DynamoRegistry.open(TABLE, REGION, moto_url)
    try:
        table = raw_dynamodb.describe_table(TableName=TABLE)["Table"]
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [STATUS_INDEX]
        await registry.create(Tenant(tenant_id="late-index", status=RUNNING))
        assert [t.tenant_id for t in await registry.list(status=RUNNING)] == ["late-index"]
    finally:
        await registry.close()


async def test_sqlite_claims_race_across_processes(tmp_path: Path) -> None:
    """Four daemon processes on one SQLite file: each round, exactly one wins."""
    db_path = tmp_path / "registry.sqlite3"
    registry = SqliteRegistry(db_path)
    await registry.create(Tenant(tenant_id="shared"))
    workers: list[asyncio.subprocess.Process] = []

    async def say(worker: asyncio.subprocess.Process, line: str) -> None:
        assert worker.stdin is not None
        worker.stdin.write(line.encode())
        await worker.stdin.drain()

    async def hear(worker: asyncio.subprocess.Process) -> str:
        assert worker.stdout is not None
        async with asyncio.timeout(10):
            return (await worker.stdout.readline()).decode().strip()

    try:
        for _ in range(4):
            workers.append(
                await asyncio.create_subprocess_exec(
                    *python_cmd("-m", "tests.contract.claim_worker", db_path, "shared"),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=project_env(),
                )
            )
        assert [await hear(w) for w in workers] == ["ready"] * 4
        for round_ in range(5):
            await asyncio.gather(*(say(w, "go\n") for w in workers))
            results = [await hear(w) for w in workers]
            assert sorted(results) == ["lost", "lost", "lost", "won"], results
            stored = await registry.get("shared")
            assert stored.status is TenantStatus.PROVISIONING
            assert stored.version == 2 + 2 * round_
            await registry.update("shared", status=TenantStatus.IDLE)
        for worker in workers:
            await say(worker, "stop\n")
        async with asyncio.timeout(10):
            assert [await w.wait() for w in workers] == [0] * 4
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        await registry.close()


async def test_sqlite_status_pages_come_off_the_index(tmp_path: Path) -> None:
    """A status scan page is an index range read: no pass over the table, no sort (at
    100,000 records each page would otherwise re-read every record of that status)."""
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    try:
        plan = registry._conn.execute(
            "EXPLAIN QUERY PLAN SELECT record FROM tenants WHERE status = ? AND tenant_id > ? "
            "ORDER BY tenant_id LIMIT ?",
            ("running", "", 10),
        ).fetchall()
        details = " / ".join(row[-1] for row in plan)
        assert "USING INDEX tenants_status_id" in details, details
        assert "TEMP B-TREE" not in details, details
    finally:
        await registry.close()


async def test_sqlite_upgrade_replaces_the_status_index_and_keeps_records(tmp_path: Path) -> None:
    import sqlite3

    db_path = tmp_path / "registry.sqlite3"
    with contextlib.closing(sqlite3.connect(db_path)) as old:  # the first schema
        old.executescript(
            "CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, status TEXT NOT NULL,"
            " version INTEGER NOT NULL, record TEXT NOT NULL);"
            "CREATE INDEX tenants_status ON tenants(status);"
        )
        kept = Tenant(tenant_id="kept", status=RUNNING)
        old.execute(
            "INSERT INTO tenants VALUES (?, ?, ?, ?)",
            ("kept", "running", 1, json.dumps(tenant_to_record(kept))),
        )
        old.commit()
    registry = SqliteRegistry(db_path)
    try:
        indexes = {
            row[0]
            for row in registry._conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert "tenants_status_id" in indexes
        assert "tenants_status" not in indexes
        assert [
            t.tenant_id for page in [p async for p in registry.scan(status=RUNNING)] for t in page
        ] == ["kept"]
    finally:
        await registry.close()
