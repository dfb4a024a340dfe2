"""Adapters under contract: every test taking ``registry``/``state_store`` runs
once per adapter, against real backends (SQLite file, directory, moto server)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from daemon.adapters.registry_dynamodb import DynamoRegistry
from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.adapters.state_dir import DirStateStore
from daemon.adapters.state_s3 import S3StateStore
from daemon.ports import DEFAULT_RETENTION, Registry, SnapshotRetention, StateStore

TABLE = "tenants"
BUCKET = "otm-contract"
REGION = "us-east-1"
# Tiny pages so every list in the suite crosses page boundaries.
PAGE_SIZE = 2


class RegistryFactory:
    """Opens registries on one shared backend; each call is a separate client,
    as a second daemon replica would have."""

    def __init__(
        self, kind: str, tmp_path: Path, moto_url: str | None, serial_moto_url: str | None
    ) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._moto_url = moto_url
        self._serial_moto_url = serial_moto_url
        self.opened: list[Registry] = []

    async def __call__(self, *, serialized: bool = False) -> Registry:
        """``serialized``: for DynamoDB, talk to the moto server that handles one
        request at a time (see ``serial_moto_url``)."""
        registry: Registry
        if self.kind == "dynamodb":
            url = self._serial_moto_url if serialized else self._moto_url
            registry = await DynamoRegistry.open(
                table=TABLE, region=REGION, endpoint_url=url, page_size=PAGE_SIZE
            )
        else:
            registry = SqliteRegistry(self._tmp_path / "registry.sqlite3", page_size=PAGE_SIZE)
        self.opened.append(registry)
        return registry


@pytest.fixture(scope="session")
def serial_moto_url(moto_server: str) -> Iterator[str]:
    """A second moto endpoint that serves one request at a time.

    DynamoDB evaluates a condition and applies the write atomically per item;
    moto's threaded server does not (its check and write run unlocked in
    concurrent request threads, so a race can produce two winners). Race tests
    therefore go through this server, which gives moto the atomicity DynamoDB
    guarantees while the clients still race. Moto keeps its backends in
    process memory, so both endpoints share the same tables and resets.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="serial-moto", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(params=["sqlite", "dynamodb"])
async def open_registry(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RegistryFactory]:
    moto_url = serial_url = None
    if request.param == "dynamodb":
        moto_url = request.getfixturevalue("moto_url")
        serial_url = request.getfixturevalue("serial_moto_url")
    factory = RegistryFactory(request.param, tmp_path, moto_url, serial_url)
    try:
        yield factory
    finally:
        for registry in factory.opened:
            await registry.close()


@pytest.fixture
async def registry(open_registry: RegistryFactory) -> Registry:
    return await open_registry()


StoreFactory = Callable[..., Awaitable[StateStore]]
"""Opens a store on the test's backend; keyword ``retention`` (a SnapshotRetention)."""


@pytest.fixture(params=["dir", "s3"])
async def open_state_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    opened: list[StateStore] = []
    moto_url = request.getfixturevalue("moto_url") if request.param == "s3" else None

    async def open_store(retention: SnapshotRetention = DEFAULT_RETENTION) -> StateStore:
        store: StateStore
        if moto_url is not None:
            store = await S3StateStore.open(
                bucket=BUCKET,
                region=REGION,
                endpoint_url=moto_url,
                page_size=PAGE_SIZE,
                retention=retention,
            )
        else:
            store = DirStateStore(tmp_path / "state", retention=retention)
        opened.append(store)
        return store

    try:
        yield open_store
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def state_store(open_state_store: StoreFactory) -> StateStore:
    return await open_state_store()
