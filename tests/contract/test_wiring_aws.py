"""The conventional AWS endpoint variables flow through settings into the
production adapters (here pointed at moto)."""

from __future__ import annotations

from pathlib import Path

import boto3

from daemon.adapters.registry_dynamodb import DynamoRegistry
from daemon.adapters.state_s3 import S3StateStore
from daemon.model import Tenant
from daemon.settings import load_settings
from daemon.wiring import make_registry, make_state_store


async def test_aws_settings_select_dynamodb_and_s3(moto_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        env={
            "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
            "AWS_ENDPOINT_URL_S3": moto_url,
            "OTM_REGISTRY": "dynamodb",
            "OTM_STATE_STORE": "s3",
            "OTM_DATA_DIR": str(tmp_path),
        }
    )
    assert settings.dynamodb_endpoint_url == settings.s3_endpoint_url == moto_url

    registry = await make_registry(settings)
    try:
        assert isinstance(registry, DynamoRegistry)
        await registry.create(Tenant(tenant_id="wired"))
        assert (await registry.get("wired")).tenant_id == "wired"
    finally:
        await registry.close()

    store = await make_state_store(settings)
    try:
        assert isinstance(store, S3StateStore)
        await store.put("wired", "state/hello.txt", b"hello")
        assert await store.get("wired", "state/hello.txt") == b"hello"
    finally:
        await store.close()

    # The data really is in moto's table and bucket, under the configured names.
    dynamodb = boto3.client("dynamodb", region_name=settings.aws_region, endpoint_url=moto_url)
    s3 = boto3.client("s3", region_name=settings.aws_region, endpoint_url=moto_url)
    try:
        item = dynamodb.get_item(
            TableName=settings.dynamodb_table, Key={"tenant_id": {"S": "wired"}}
        )["Item"]
        assert item["status"] == {"S": "idle"}
        body = s3.get_object(Bucket=settings.s3_bucket, Key="tenants/wired/state/hello.txt")
        assert body["Body"].read() == b"hello"
        body["Body"].close()
    finally:
        dynamodb.close()
        s3.close()
    assert not (tmp_path / "registry.sqlite3").exists()
    assert not (tmp_path / "state").exists()
