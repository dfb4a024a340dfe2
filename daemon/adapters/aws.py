"""boto3 clients for the AWS adapters.

One botocore session per process: it caches the parsed service models, so a
second client (another adapter, a test's second replica) costs milliseconds
instead of re-reading the JSON models. Sessions are not thread-safe, hence the
lock; the clients they make are.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session


def _config(*, read_timeout: float, path_style: bool = False) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=read_timeout,
        # Calls run in the default thread pool (up to 32 workers); one
        # connection each avoids waiting on the pool.
        max_pool_connections=32,
        # A custom endpoint (moto, MinIO) rarely resolves bucket subdomains.
        s3={"addressing_style": "path"} if path_style else {},
    )


def _client(service: str, region: str, endpoint_url: str | None, config: Config) -> Any:
    # Typed Any: the stubs type `client` per literal service name; callers narrow it.
    session: Any = _shared_session()
    with _lock:
        return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def dynamodb_client(region: str, endpoint_url: str | None) -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb", region, endpoint_url, _config(read_timeout=15))
    return client


def s3_client(region: str, endpoint_url: str | None) -> S3Client:
    config = _config(read_timeout=60, path_style=endpoint_url is not None)
    client: S3Client = _client("s3", region, endpoint_url, config)
    return client


def sts_client(region: str, endpoint_url: str | None) -> Any:
    """STS client for vending tenant-scoped credentials (daemon/kube/tenant_credentials.py).
    Typed Any: the project installs no STS type stubs."""
    return _client("sts", region, endpoint_url, _config(read_timeout=15))
