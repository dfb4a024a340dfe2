"""Composition root: the daemon's aiohttp app factory, one cleanup context per resource.

The admin app owns every shared resource; the public router app (a second
listener, so the admin API is never reachable through the Telegram ingress)
is started and stopped by one of those cleanup contexts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from daemon import app_keys as keys
from daemon import redis_client, wiring
from daemon.adapters.local.processes import lock_data_dir
from daemon.admin import access_api as admin_access
from daemon.admin import api as admin_api
from daemon.admin import lifecycle as admin_lifecycle
from daemon.admin import model as admin_model
from daemon.admin import rollout as admin_rollout
from daemon.admin import snapshots as admin_snapshots
from daemon.admin import watch as admin_watch
from daemon.admin.audit import AuditLog, access_middleware
from daemon.admin.tokens import AdminTokens
from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination, LiveConfig
from daemon.embedded_redis import EmbeddedRedis, supervise
from daemon.hardening import secure_data_dir
from daemon.metrics import Metrics
from daemon.model import new_secret
from daemon.model_gateway.app import model_gateway_ctx
from daemon.msgpath.pubsub import TenantSignals
from daemon.msgpath.tenant_cache import TenantCache
from daemon.orchestrator import Orchestrator
from daemon.redis_migrate import migrate_key_layout
from daemon.router import create_router_app
from daemon.router_limits import ConnectionGuard, GuardedTCPSite
from daemon.settings import Settings
from daemon.tasks import TaskGroup
from daemon.telegram import BotApi

log = logging.getLogger(__name__)


def ensure_admin_token(settings: Settings) -> str:
    """The configured token, or one generated once into the data dir (0600)."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.admin_token_path
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


async def tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    metrics = app[keys.METRICS]
    app[keys.TASKS] = TaskGroup(
        on_failure=lambda name: metrics.background_task_failures.labels(task=name).inc()
    )
    yield
    await app[keys.TASKS].close()


async def stop_background_tasks(app: web.Application) -> None:
    """on_shutdown runs before any cleanup context closes its resource, so no
    background task (a wake, a watch stream) outlives the registry or Redis."""
    await app[keys.TASKS].close()


def fail_daemon(app: web.Application, reason: str) -> None:
    """Stop the daemon with a non-zero exit: better than running half-alive."""
    log.critical("daemon cannot go on: %s", reason)
    app[keys.FATAL_ERRORS].append(reason)
    os.kill(os.getpid(), signal.SIGTERM)


async def data_dir_lock_ctx(app: web.Application) -> AsyncIterator[None]:
    """One daemon per data dir when it runs local agents or a private Redis: a second
    one would see neither (it would start a second agent per tenant, a second
    redis-server on the same AOF). A Kubernetes-runtime replica with an external
    Redis shares the data dir safely and takes no lock."""
    settings = app[keys.SETTINGS]
    if settings.runtime != "local" and settings.redis_url is not None:
        yield
        return
    fd = await asyncio.to_thread(lock_data_dir, settings.data_dir)
    try:
        yield
    finally:
        os.close(fd)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    # Credentials in the URL win over these (redis-py's from_url precedence).
    credentials = settings.redis_credentials() if url is not None else {}
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis", binary=settings.redis_server_binary)
        url = await embedded.astart()
        app[keys.TASKS].spawn(
            supervise(embedded, lambda reason: fail_daemon(app, reason)), name="redis-supervisor"
        )
    client = redis_client.connect(url, cluster=settings.redis_cluster, credentials=credentials)
    app[keys.REDIS] = client
    app[keys.COORDINATION] = Coordination(
        client, config_defaults=LiveConfig(default_idle_timeout_s=settings.default_idle_timeout_s)
    )
    try:
        if not settings.redis_cluster:
            # Before serving: buffered updates of an older release move to the current names.
            await migrate_key_layout(client)
        yield
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.astop()


async def admin_access_ctx(app: web.Application) -> AsyncIterator[None]:
    """Admin tokens and the audit log: both in the Redis every replica shares."""
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    app[keys.ADMIN_TOKENS] = AdminTokens(redis, bootstrap_secret=ensure_admin_token(settings))
    app[keys.AUDIT_LOG] = AuditLog(
        redis,
        max_entries=settings.audit_max_entries,
        retention_s=settings.audit_retention_days * 86400,
    )
    yield


async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
    registry = await wiring.make_registry(app[keys.SETTINGS])
    app[keys.REGISTRY] = registry
    # Read by the router, delivery and the Bot API relay (invalidated by the message path).
    app[keys.TENANT_CACHE] = tenants = TenantCache(registry)
    learning = app[keys.TASKS].spawn(tenants.learn_running(), name="tenant-cache-start-up")
    try:
        yield
    finally:
        await cancel_and_wait([learning], timeout=5)  # its scan must not outlive the registry
        await tenants.close()
        await registry.close()


async def state_store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = await wiring.make_state_store(app[keys.SETTINGS])
    app[keys.STATE_STORE] = store
    try:
        yield
    finally:
        await store.close()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    # One pooled client session for agent forwards and Bot API calls.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=32, keepalive_timeout=30)
    session = aiohttp.ClientSession(connector=connector)
    app[keys.HTTP] = session
    app[keys.BOT_API] = BotApi(session, app[keys.SETTINGS].telegram_api_base)
    try:
        yield
    finally:
        await session.close()


async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime, warm_pool = await wiring.make_runtime(
        settings=app[keys.SETTINGS],
        state_store=app[keys.STATE_STORE],
        coordination=app[keys.COORDINATION],
        session=app[keys.HTTP],
        metrics=app[keys.METRICS],
        webhook_url_for=wiring.agent_webhook_urls(
            app[keys.SETTINGS], lambda: app.get(keys.ROUTER_URL)
        ),
    )
    app[keys.RUNTIME] = runtime
    if warm_pool is not None:
        app[keys.WARM_POOL] = warm_pool
    try:
        yield
    finally:
        await runtime.close()


async def orchestrator_ctx(app: web.Application) -> AsyncIterator[None]:
    app[keys.ORCHESTRATOR] = Orchestrator(
        settings=app[keys.SETTINGS],
        registry=app[keys.REGISTRY],
        state_store=app[keys.STATE_STORE],
        runtime=app[keys.RUNTIME],
        coordination=app[keys.COORDINATION],
        bot_api=app[keys.BOT_API],
    )
    yield


async def router_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    # Anonymous clients reach this listener: a connection cap and a header deadline.
    guard = ConnectionGuard(
        max_connections=settings.router_max_connections,
        header_timeout_s=settings.router_header_timeout_s,
    )
    router_app = create_router_app(app, middlewares=[guard.middleware])
    runner = web.AppRunner(router_app, access_log=None, handle_signals=False)
    await runner.setup()
    site = GuardedTCPSite(runner, settings.router_host, settings.router_port, guard=guard)
    await site.start()
    app[keys.ROUTER_URL] = _site_url(runner)
    log.info("router listening on %s", app[keys.ROUTER_URL])
    try:
        yield
    finally:
        await runner.cleanup()


def _site_url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def create_app(settings: Settings) -> web.Application:
    secure_data_dir(settings.data_dir)
    ensure_admin_token(settings)  # now: the CLI finds the file before the daemon is ready
    app = web.Application(
        middlewares=[
            access_middleware(log_requests=settings.admin_access_log),
            admin_api.errors_middleware,
            admin_api.auth_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    # The daemon's one pub/sub subscriber (listening from the message path's context on)
    # and the admin watch streams it feeds.
    signals = TenantSignals()
    app[keys.SIGNALS] = signals
    app[keys.WATCH_HUB] = admin_watch.WatchHub(signals)
    app[keys.FATAL_ERRORS] = []
    app.cleanup_ctx.extend(
        [
            data_dir_lock_ctx,
            tasks_ctx,
            redis_ctx,
            admin_access_ctx,
            registry_ctx,
            state_store_ctx,
            http_ctx,
            model_gateway_ctx,  # before the runtime: agents are rendered with its URL
            runtime_ctx,
            orchestrator_ctx,
            *wiring.background_contexts(settings),
            router_listener_ctx,
        ]
    )
    app.on_shutdown.append(stop_background_tasks)
    admin_api.setup_routes(app)
    admin_access.setup_routes(app)
    admin_lifecycle.setup_routes(app)
    admin_snapshots.setup_routes(app)
    admin_model.setup_routes(app)
    admin_rollout.setup_routes(app)
    admin_watch.setup_routes(app)
    return app


def write_discovery_file(settings: Settings, admin_url: str, router_url: str) -> Path:
    """Where the local CLI finds a running embedded daemon."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "daemon.json"
    path.write_text(
        json.dumps({"admin_url": admin_url, "router_url": router_url, "pid": os.getpid()})
    )
    return path
