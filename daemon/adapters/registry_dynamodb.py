"""Registry on DynamoDB: the production adapter.

One item per tenant (hash key ``tenant_id``), a GSI ``status-index`` (hash
``status``, range ``last_active_at``) for listing by status. Every write carries a
condition expression, so two replicas racing on a transition can never both
win: DynamoDB evaluates the condition and the write atomically.

Encoding: ``None`` fields are left out of the item (REMOVEd on update) rather
than stored as NULL, numbers go through Decimal (the boto3 serializer), and
timestamps are UTC ISO strings with fixed microsecond precision so that the
string comparison in ``touch``'s condition orders them correctly.

boto3 is synchronous; every call runs in a worker thread (one shared client,
which botocore documents as thread-safe).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from daemon.adapters.aws import dynamodb_client
from daemon.model import (
    ConditionFailed,
    Tenant,
    TenantExists,
    TenantNotFound,
    TenantStatus,
    check_changes,
    tenant_from_record,
    tenant_to_record,
    utcnow,
    validate_tenant_id,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        AttributeValueTypeDef,
        GlobalSecondaryIndexTypeDef,
        PaginatorConfigTypeDef,
        TableDescriptionTypeDef,
    )

log = logging.getLogger(__name__)

STATUS_INDEX = "status-index"
_TIMESTAMP_FIELDS = frozenset({"created_at", "updated_at", "last_active_at"})
# How long open() waits for a table or index being created to become ACTIVE.
_ACTIVE_TIMEOUT_S = 300.0

# Key attributes of the table and its index (all strings).
_ATTRIBUTE_DEFINITIONS: list[AttributeDefinitionTypeDef] = [
    {"AttributeName": name, "AttributeType": "S"}
    for name in ("tenant_id", "status", "last_active_at")
]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _status_index() -> GlobalSecondaryIndexTypeDef:
    # Same schema as docs/setup-guide.md. The range key lets a caller find
    # e.g. running tenants idle since a cutoff without reading the others.
    return {
        "IndexName": STATUS_INDEX,
        "KeySchema": [
            {"AttributeName": "status", "KeyType": "HASH"},
            {"AttributeName": "last_active_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def encode_timestamp(value: datetime) -> str:
    """UTC, fixed width: lexicographic order equals time order."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _plain(name: str, value: Any) -> Any:
    if name in _TIMESTAMP_FIELDS and isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return encode_timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _attr(name: str, value: Any) -> AttributeValueTypeDef:
    result: AttributeValueTypeDef = _serializer.serialize(_plain(name, value))
    return result


def tenant_to_item(tenant: Tenant) -> dict[str, AttributeValueTypeDef]:
    """Typed DynamoDB item; None fields are omitted (absent means None)."""
    return {
        name: _attr(name, value)
        for name, value in tenant_to_record(tenant).items()
        if value is not None
    }


def tenant_from_item(item: Mapping[str, Any]) -> Tenant:
    record = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return tenant_from_record(record)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _conditional_write(write: Callable[[], object]) -> bool:
    """One conditional PutItem/UpdateItem/DeleteItem; False when its condition failed
    (every other error raises)."""
    try:
        write()
    except ClientError as exc:
        if _error_code(exc) != "ConditionalCheckFailedException":
            raise
        return False
    return True


class DynamoRegistry:
    def __init__(self, client: DynamoDBClient, table: str, *, page_size: int | None = None) -> None:
        self._client = client
        self.table = table
        self.page_size = page_size
        """Items per Query/Scan page (None: DynamoDB's 1 MB pages)."""

    @classmethod
    async def open(
        cls,
        table: str,
        region: str,
        endpoint_url: str | None = None,
        *,
        page_size: int | None = None,
    ) -> DynamoRegistry:
        """Connect, creating the table (and its status index) if missing."""
        client = await asyncio.to_thread(dynamodb_client, region, endpoint_url)
        try:
            await asyncio.to_thread(_ensure_table, client, table)
        except BaseException:
            client.close()
            raise
        return cls(client, table, page_size=page_size)

    @property
    def client(self) -> DynamoDBClient:
        """The boto3 client (for tests observing calls through its event hooks)."""
        return self._client

    def _key(self, tenant_id: str) -> dict[str, AttributeValueTypeDef]:
        return {"tenant_id": {"S": tenant_id}}

    async def create(self, tenant: Tenant) -> Tenant:
        item = tenant_to_item(tenant)
        written = await asyncio.to_thread(
            _conditional_write,
            partial(
                self._client.put_item,
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(tenant_id)",
            ),
        )
        if not written:
            raise TenantExists(tenant.tenant_id)
        return tenant

    def _get_item(self, tenant_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table, Key=self._key(tenant_id), ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    async def get(self, tenant_id: str) -> Tenant:
        validate_tenant_id(tenant_id)
        item = await asyncio.to_thread(self._get_item, tenant_id)
        if item is None:
            raise TenantNotFound(tenant_id)
        return tenant_from_item(item)

    async def list(self, *, status: TenantStatus | None = None) -> list[Tenant]:
        def collect() -> list[Tenant]:
            return sorted(
                (tenant_from_item(item) for item in self._pages(status)),
                key=lambda t: t.tenant_id,
            )

        return await asyncio.to_thread(collect)

    async def scan(
        self, *, status: TenantStatus | None = None
    ) -> AsyncIterator[builtins.list[Tenant]]:
        # One Scan/Query page per request (``page_size`` items, or DynamoDB's 1 MB),
        # each decoded in a worker thread; the next is asked for only when this one is done.
        start: dict[str, Any] | None = None
        while True:
            items, start = await asyncio.to_thread(self._page, status, start)
            if items:
                yield [tenant_from_item(item) for item in items]
            if start is None:
                return

    def _page(
        self, status: TenantStatus | None, start: dict[str, Any] | None
    ) -> tuple[builtins.list[dict[str, Any]], dict[str, Any] | None]:
        args: dict[str, Any] = {"TableName": self.table}
        if self.page_size:
            args["Limit"] = self.page_size
        if start is not None:
            args["ExclusiveStartKey"] = start
        answer: Any
        if status is None:
            answer = self._client.scan(**args, ConsistentRead=True)
        else:
            answer = self._client.query(**args, **_status_query(status))
        return list(answer.get("Items", [])), answer.get("LastEvaluatedKey")

    async def count_by_status(self) -> dict[TenantStatus, int]:
        def count(status: TenantStatus) -> int:
            total, start = 0, None
            while True:  # Select COUNT: DynamoDB reads the index, sends back no items
                args: dict[str, Any] = {"TableName": self.table, "Select": "COUNT"}
                if start is not None:
                    args["ExclusiveStartKey"] = start
                answer: Any = self._client.query(**args, **_status_query(status))
                total += int(answer.get("Count", 0))
                start = answer.get("LastEvaluatedKey")
                if start is None:
                    return total

        counts = await asyncio.gather(*(asyncio.to_thread(count, s) for s in TenantStatus))
        return {s: n for s, n in zip(TenantStatus, counts, strict=True) if n}

    def _pages(self, status: TenantStatus | None) -> Iterator[Mapping[str, Any]]:
        pagination: PaginatorConfigTypeDef = {"PageSize": self.page_size} if self.page_size else {}
        if status is None:
            scan = self._client.get_paginator("scan")
            for page in scan.paginate(
                TableName=self.table, ConsistentRead=True, PaginationConfig=pagination
            ):
                yield from page.get("Items", [])
            return
        query = self._client.get_paginator("query")
        for page in query.paginate(
            TableName=self.table, **_status_query(status), PaginationConfig=pagination
        ):
            yield from page.get("Items", [])

    async def update(
        self,
        tenant_id: str,
        *,
        if_status: Collection[TenantStatus] | None = None,
        if_version: int | None = None,
        **changes: Any,
    ) -> Tenant:
        validate_tenant_id(tenant_id)
        clean = check_changes(changes)
        wanted = None if if_status is None else sorted({TenantStatus(s).value for s in if_status})

        names: dict[str, str] = {"#version": "version", "#updated_at": "updated_at"}
        values: dict[str, AttributeValueTypeDef] = {
            ":one": {"N": "1"},
            ":now": _attr("updated_at", utcnow()),
        }
        sets = ["#version = #version + :one", "#updated_at = :now"]
        removes: list[str] = []
        for i, (name, value) in enumerate(sorted(clean.items())):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                values[f":f{i}"] = _attr(name, value)
                sets.append(f"#f{i} = :f{i}")
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)

        conditions = ["attribute_exists(tenant_id)"]
        if wanted is not None:
            names["#status"] = "status"
            placeholders = []
            for i, value in enumerate(wanted):
                values[f":s{i}"] = {"S": value}
                placeholders.append(f":s{i}")
            conditions.append(f"#status IN ({', '.join(placeholders)})")
        if if_version is not None:
            values[":expected_version"] = {"N": str(int(if_version))}
            conditions.append("#version = :expected_version")

        def write() -> Tenant:
            if wanted == []:
                # No status can match ("IN ()" is not even valid syntax).
                current = self._get_item(tenant_id)
                if current is None:
                    raise TenantNotFound(tenant_id)
                raise ConditionFailed(tenant_id, _mismatch(tenant_from_item(current), [], None))
            try:
                response = self._client.update_item(
                    TableName=self.table,
                    Key=self._key(tenant_id),
                    UpdateExpression=expression,
                    ConditionExpression=" AND ".join(conditions),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise
                old: Mapping[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                if old is None:
                    old = self._get_item(tenant_id)
                if old is None:
                    raise TenantNotFound(tenant_id) from None
                raise ConditionFailed(
                    tenant_id, _mismatch(tenant_from_item(old), wanted, if_version)
                ) from None
            return tenant_from_item(response["Attributes"])

        return await asyncio.to_thread(write)

    async def touch(self, tenant_id: str, at: datetime) -> None:
        validate_tenant_id(tenant_id)
        stamp = encode_timestamp(at)

        # The condition also guards existence: an unconditional UpdateItem would
        # create a stub item for an unknown tenant. Absent or already newer (the
        # condition failed): both are the documented no-op.
        await asyncio.to_thread(
            _conditional_write,
            partial(
                self._client.update_item,
                TableName=self.table,
                Key=self._key(tenant_id),
                UpdateExpression="SET #last = :at",
                ConditionExpression="attribute_exists(tenant_id) AND #last < :at",
                ExpressionAttributeNames={"#last": "last_active_at"},
                ExpressionAttributeValues={":at": {"S": stamp}},
            ),
        )

    async def delete(self, tenant_id: str) -> None:
        validate_tenant_id(tenant_id)

        deleted = await asyncio.to_thread(
            _conditional_write,
            partial(
                self._client.delete_item,
                TableName=self.table,
                Key=self._key(tenant_id),
                ConditionExpression="attribute_exists(tenant_id)",
            ),
        )
        if not deleted:
            raise TenantNotFound(tenant_id)

    async def ping(self) -> bool:
        try:
            await asyncio.to_thread(self._client.describe_table, TableName=self.table)
        except ClientError:
            return False
        return True

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def _status_query(status: TenantStatus) -> dict[str, Any]:
    """Query arguments for one status's records, through the status index."""
    return {
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": "#status = :status",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":status": {"S": TenantStatus(status).value}},
    }


def _mismatch(current: Tenant, wanted: list[str] | None, if_version: int | None) -> str:
    """Say which expectation failed (the loser's log line and API error)."""
    problems = []
    if wanted is not None and current.status.value not in wanted:
        expected = ", ".join(wanted) if wanted else "(none)"
        problems.append(f"status is {current.status.value}, expected one of {expected}")
    if if_version is not None and current.version != if_version:
        problems.append(f"version is {current.version}, expected {if_version}")
    return "; ".join(problems) or "record changed concurrently"


def _ensure_table(client: DynamoDBClient, table: str) -> None:
    """Create the table if missing (another replica may race us), then make
    sure it and its status index are ACTIVE."""
    try:
        description = client.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        log.info("creating DynamoDB table %s", table)
        try:
            client.create_table(
                TableName=table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=_ATTRIBUTE_DEFINITIONS,
                KeySchema=[{"AttributeName": "tenant_id", "KeyType": "HASH"}],
                GlobalSecondaryIndexes=[_status_index()],
            )
        except ClientError as create_exc:
            if _error_code(create_exc) != "ResourceInUseException":
                raise
        description = _wait_active(client, table)
    if not _has_status_index(description):
        # Tables made by hand (or by the system we replace) may lack the index.
        log.info("adding index %s to DynamoDB table %s", STATUS_INDEX, table)
        index = _status_index()
        try:
            client.update_table(
                TableName=table,
                AttributeDefinitions=_ATTRIBUTE_DEFINITIONS,
                GlobalSecondaryIndexUpdates=[
                    {
                        "Create": {
                            "IndexName": index["IndexName"],
                            "KeySchema": index["KeySchema"],
                            "Projection": index["Projection"],
                        }
                    }
                ],
            )
        except ClientError:
            # Another replica may have started the same index first.
            if not _has_status_index(client.describe_table(TableName=table)["Table"]):
                raise
    _wait_active(client, table)


def _has_status_index(description: TableDescriptionTypeDef) -> bool:
    return any(
        index.get("IndexName") == STATUS_INDEX
        for index in description.get("GlobalSecondaryIndexes", [])
    )


def _wait_active(client: DynamoDBClient, table: str) -> TableDescriptionTypeDef:
    deadline = time.monotonic() + _ACTIVE_TIMEOUT_S
    delay = 0.05
    while True:
        description = client.describe_table(TableName=table)["Table"]
        indexes = description.get("GlobalSecondaryIndexes", [])
        if description.get("TableStatus") == "ACTIVE" and all(
            index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
        ):
            return description
        if time.monotonic() > deadline:
            raise TimeoutError(f"DynamoDB table {table} did not become ACTIVE")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
