"""StateStore on S3: the production adapter.

Keys are ``tenants/{id}/{key}`` (``state/...``, ``workspace/...``), the layout
the pod's init container and sync sidecar use, and the prefix the per-tenant
Pod Identity policy is scoped to. Snapshots live at
``tenants/{id}/snapshots/latest.tar.gz`` (history: ``snapshots/history/...``) and
share the tar format of the directory adapter.

boto3 is synchronous; every call runs in a worker thread (one shared client).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from daemon.adapters.aws import s3_client
from daemon.adapters.state_keys import SnapshotsOnKeys, check_key
from daemon.model import validate_tenant_id
from daemon.ports import DEFAULT_RETENTION, SnapshotRetention

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

# DeleteObjects accepts at most 1000 keys per request.
MAX_DELETE_BATCH = 1000


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def tenant_prefix(tenant_id: str) -> str:
    return f"tenants/{validate_tenant_id(tenant_id)}/"


class S3StateStore(SnapshotsOnKeys):
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        page_size: int = MAX_DELETE_BATCH,
        retention: SnapshotRetention = DEFAULT_RETENTION,
    ) -> None:
        if not 1 <= page_size <= MAX_DELETE_BATCH:
            raise ValueError(f"page_size must be between 1 and {MAX_DELETE_BATCH}")
        self.retention = retention
        self._client = client
        self.bucket = bucket
        self.page_size = page_size
        """Keys per list page, hence per delete batch in delete_tenant."""

    @classmethod
    async def open(
        cls,
        bucket: str,
        region: str,
        endpoint_url: str | None = None,
        *,
        page_size: int = MAX_DELETE_BATCH,
        retention: SnapshotRetention = DEFAULT_RETENTION,
    ) -> S3StateStore:
        """Connect, creating the bucket if it does not exist."""
        client = await asyncio.to_thread(s3_client, region, endpoint_url)
        try:
            await asyncio.to_thread(_ensure_bucket, client, bucket, region)
        except BaseException:
            client.close()
            raise
        return cls(client, bucket, page_size=page_size, retention=retention)

    @property
    def client(self) -> S3Client:
        """The boto3 client (for tests observing calls through its event hooks)."""
        return self._client

    def _object_key(self, tenant_id: str, key: str) -> str:
        return tenant_prefix(tenant_id) + check_key(key)

    async def put(self, tenant_id: str, key: str, data: bytes) -> None:
        object_key = self._object_key(tenant_id, key)
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=object_key, Body=data
        )

    async def get(self, tenant_id: str, key: str) -> bytes:
        object_key = self._object_key(tenant_id, key)

        def read() -> bytes:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if _error_code(exc) in ("NoSuchKey", "404"):
                    raise KeyError(key) from None
                raise
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

        return await asyncio.to_thread(read)

    def _iter_objects(self, prefix: str) -> Iterator[list[tuple[str, int]]]:
        """(key, size) of the objects under ``prefix``, one list per page."""
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        ):
            yield [
                (obj["Key"], obj.get("Size", 0)) for obj in page.get("Contents", []) if "Key" in obj
            ]

    def _iter_keys(self, prefix: str) -> Iterator[list[str]]:
        """Object keys under ``prefix``, one list per page."""
        for page in self._iter_objects(prefix):
            yield [key for key, _ in page]

    async def list_sized(self, tenant_id: str, prefix: str) -> list[tuple[str, int]]:
        base = tenant_prefix(tenant_id)

        def collect() -> list[tuple[str, int]]:
            return sorted(
                (key[len(base) :], size)
                for page in self._iter_objects(base + prefix)
                for key, size in page
            )

        return await asyncio.to_thread(collect)

    async def list(self, tenant_id: str, prefix: str = "") -> list[str]:
        base = tenant_prefix(tenant_id)

        def collect() -> list[str]:
            return sorted(
                key[len(base) :] for page in self._iter_keys(base + prefix) for key in page
            )

        return await asyncio.to_thread(collect)

    async def delete(self, tenant_id: str, key: str) -> None:
        object_key = self._object_key(tenant_id, key)
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=object_key)

    async def delete_tenant(self, tenant_id: str) -> None:
        base = tenant_prefix(tenant_id)

        def remove_all() -> None:
            # Collect first: deleting while paginating would shift the pages.
            batches = [page for page in self._iter_keys(base) if page]
            for batch in batches:
                objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in batch]
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise RuntimeError(
                        f"could not delete {len(errors)} objects of tenant {tenant_id!r}, "
                        f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    )

        await asyncio.to_thread(remove_all)

    async def ping(self) -> bool:
        return not await self.write_problem()

    async def put_probe(self, key: str, data: bytes) -> None:
        # Under tenants/: the prefix the daemon's IAM policy grants writes on.
        object_key = "tenants/" + check_key(key)
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=object_key, Body=data
        )

    async def delete_probe(self, key: str) -> None:
        object_key = "tenants/" + check_key(key)
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=object_key)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def _probe(client: S3Client, bucket: str) -> None:
    """A one-key list under ``tenants/``: what the daemon's IAM policy allows
    (ListBucket is conditioned on that prefix, so HeadBucket would be denied)."""
    client.list_objects_v2(Bucket=bucket, Prefix="tenants/", MaxKeys=1)


def _ensure_bucket(client: S3Client, bucket: str, region: str) -> None:
    try:
        _probe(client, bucket)
        return
    except ClientError as exc:
        if _error_code(exc) != "NoSuchBucket":
            raise
    log.info("creating S3 bucket %s", bucket)
    try:
        if region == "us-east-1":
            # us-east-1 rejects an explicit LocationConstraint.
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
            )
    except ClientError as exc:
        # Another replica created it first.
        if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    client.get_waiter("bucket_exists").wait(
        Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
