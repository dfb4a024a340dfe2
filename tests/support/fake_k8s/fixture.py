"""pytest fixture `fake_k8s`: a running FakeKubernetes plus a kubeconfig pointing at it.

Use it from a conftest with `from tests.support.fake_k8s.fixture import fake_k8s`.
For non-default options (no kubelet, a pod backend, ...) use `running_fake_k8s(...)`:

    async with running_fake_k8s(tmp_path, pod_backend=MyBackend()) as k8s:
        async with k8s.api_client() as api:
            ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from kubernetes_asyncio import client, config

from .server import FakeKubernetes


@dataclass(frozen=True)
class FakeK8s:
    server: FakeKubernetes
    kubeconfig_path: Path
    """The daemon's kubeconfig: the admin's, or the ServiceAccount's under RBAC."""
    admin_kubeconfig_path: Path | None = None
    """With RBAC: the admin's (the test's own view of the cluster)."""

    @property
    def url(self) -> str:
        return self.server.url

    @contextlib.asynccontextmanager
    async def api_client(self) -> AsyncIterator[client.ApiClient]:
        """A kubernetes_asyncio ApiClient for the test itself (the admin), configured from
        a kubeconfig file as the daemon would configure one; closed on exit."""
        path = self.admin_kubeconfig_path or self.kubeconfig_path
        async with kubeconfig_api_client(path) as api:
            yield api


@contextlib.asynccontextmanager
async def kubeconfig_api_client(kubeconfig_path: Path) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(kubeconfig_path), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        yield api


@contextlib.asynccontextmanager
async def running_fake_k8s(
    directory: Path, *, kubeconfig_user: str | None = None, **options: Any
) -> AsyncIterator[FakeK8s]:
    """Start a FakeKubernetes(**options), write `directory/kubeconfig`, stop it on exit.

    ``kubeconfig_user``: that kubeconfig authenticates as this user (e.g. the daemon's
    ServiceAccount, authorized by ``options["rbac"]``); the admin's is then
    `directory/admin-kubeconfig`."""
    server = FakeKubernetes(**options)
    await server.start()
    try:
        if kubeconfig_user is None:
            yield FakeK8s(server, server.write_kubeconfig(directory / "kubeconfig"))
        else:
            path = server.write_kubeconfig(directory / "kubeconfig", user=kubeconfig_user)
            admin = server.write_kubeconfig(directory / "admin-kubeconfig")
            yield FakeK8s(server, path, admin)
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def fake_k8s(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    async with running_fake_k8s(tmp_path) as k8s:
        yield k8s
