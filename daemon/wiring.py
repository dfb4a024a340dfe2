"""Pick adapters from settings. Imports are lazy so the embedded default never
loads boto3 or kubernetes_asyncio it does not use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from daemon import keys
from daemon.ports import Registry, Runtime, StateStore
from daemon.settings import Settings

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


async def make_registry(settings: Settings) -> Registry:
    if settings.registry == "dynamodb":
        from daemon.adapters.registry_dynamodb import DynamoRegistry

        return await DynamoRegistry.open(
            table=settings.dynamodb_table,
            region=settings.aws_region,
            endpoint_url=settings.dynamodb_endpoint_url,
        )
    from daemon.adapters.registry_sqlite import SqliteRegistry

    return SqliteRegistry(settings.sqlite_path)


async def make_state_store(settings: Settings) -> StateStore:
    if settings.state_store == "s3":
        from daemon.adapters.state_s3 import S3StateStore

        return await S3StateStore.open(
            bucket=settings.s3_bucket,
            region=settings.aws_region,
            endpoint_url=settings.s3_endpoint_url,
        )
    from daemon.adapters.state_dir import DirStateStore

    return DirStateStore(settings.state_dir)


async def make_runtime(app: web.Application) -> Runtime | Any:
    settings = app[keys.SETTINGS]
    if settings.runtime == "kubernetes":
        from daemon.adapters.runtime_k8s import KubernetesRuntime

        return await KubernetesRuntime.open(app)
    from daemon.adapters.runtime_local import LocalRuntime

    return await LocalRuntime.open(app)


def background_contexts(settings: Settings) -> list[CleanupCtx]:
    """Cleanup contexts of the long-running tasks (delivery, reconciler, culler, warm pool)."""
    from daemon.culler import culler_ctx
    from daemon.leader import leader_ctx
    from daemon.message_path import message_path_ctx
    from daemon.reconciler import reconciler_ctx
    from daemon.tenant_metrics import tenant_metrics_ctx

    # The message path (delivery, wake/sleep) first: the reconciler nudges delivery
    # and the culler sleeps through wake, so they must stop before it closes.
    # Leader election before the loops that register leader-only tasks with it
    # (the tenant gauge too; it also listens to the message path's tenant events).
    contexts: list[CleanupCtx] = [
        message_path_ctx,
        leader_ctx,
        reconciler_ctx,
        culler_ctx,
        tenant_metrics_ctx,
    ]
    if settings.runtime == "kubernetes":
        from daemon.warm_pool import warm_pool_ctx

        contexts.append(warm_pool_ctx)
    else:
        from daemon.adapters.local_warm_pool import local_warm_pool_ctx

        contexts.append(local_warm_pool_ctx)
    return contexts
