"""Typed aiohttp AppKeys: the daemon's shared parts, set by the composition root.

Only the composition root (app.py, wiring.py, message_path.py, __main__.py) and the
HTTP handlers (router.py, admin_*.py) read these; every other part gets its
collaborators as constructor arguments. The domain types are imported for type
checking only, so importing this module pulls no part of the daemon in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

if TYPE_CHECKING:
    from daemon.admin.audit import AuditLog
    from daemon.admin.tokens import AdminTokens
    from daemon.admin.watch import WatchHub
    from daemon.coordination import Coordination
    from daemon.kube.warm_pool import WarmPool
    from daemon.lifecycle.culler import Culler
    from daemon.lifecycle.leader import LeaderElector, LeaderTasks
    from daemon.lifecycle.rollout import Rollouts
    from daemon.metrics import Metrics
    from daemon.msgpath.buffer import Buffer
    from daemon.msgpath.delivery import DeliveryManager
    from daemon.msgpath.poller import PollerManager
    from daemon.msgpath.pubsub import TenantSignals
    from daemon.msgpath.tenant_cache import TenantCache
    from daemon.msgpath.wake import WakeManager
    from daemon.orchestrator import Orchestrator
    from daemon.ports import Registry, Runtime, StateStore
    from daemon.reconciler import Reconciler
    from daemon.settings import Settings
    from daemon.tasks import TaskGroup
    from daemon.telegram import BotApi

# Shared resources (one cleanup context each in app.py).
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
TASKS: web.AppKey[TaskGroup] = web.AppKey("tasks")
REDIS = web.AppKey("redis", aioredis.Redis)
COORDINATION: web.AppKey[Coordination] = web.AppKey("coordination")
REGISTRY: web.AppKey[Registry] = web.AppKey("registry")
STATE_STORE: web.AppKey[StateStore] = web.AppKey("state_store")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
HTTP = web.AppKey("http", aiohttp.ClientSession)
BOT_API: web.AppKey[BotApi] = web.AppKey("bot_api")
ORCHESTRATOR: web.AppKey[Orchestrator] = web.AppKey("orchestrator")
ROUTER_URL = web.AppKey("router_url", str)
PARENT = web.AppKey("parent", web.Application)
"""On the router app: the admin app holding the shared parts."""
STARTED_AT = web.AppKey("started_at", float)
FATAL_ERRORS = web.AppKey("fatal_errors", list[str])
"""Why the daemon stops itself (it then exits non-zero: see daemon/__main__.py)."""
WATCH_HUB: web.AppKey[WatchHub] = web.AppKey("watch_hub")
ADMIN_TOKENS: web.AppKey[AdminTokens] = web.AppKey("admin_tokens")
"""The configured and named admin tokens (admin/tokens.py); read by the auth middleware."""
AUDIT_LOG: web.AppKey[AuditLog] = web.AppKey("audit_log")

# The message path (message_path.py).
BUFFER: web.AppKey[Buffer] = web.AppKey("buffer")
TENANT_CACHE: web.AppKey[TenantCache] = web.AppKey("tenant_cache")
SIGNALS: web.AppKey[TenantSignals] = web.AppKey("signals")
WAKE: web.AppKey[WakeManager] = web.AppKey("wake")
DELIVERY: web.AppKey[DeliveryManager] = web.AppKey("delivery")

# Loops (wiring.py).
LEADER: web.AppKey[LeaderElector] = web.AppKey("leader")
LEADER_TASKS: web.AppKey[LeaderTasks] = web.AppKey("leader_tasks")
RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler")
CULLER: web.AppKey[Culler] = web.AppKey("culler")
POLLERS: web.AppKey[PollerManager] = web.AppKey("pollers")
"""Long polling (getUpdates) for tenants whose ingress is ``polling``."""
WARM_POOL: web.AppKey[WarmPool] = web.AppKey("warm_pool")
ROLLOUTS: web.AppKey[Rollouts] = web.AppKey("rollouts")
"""Fleet image rollouts: start, pause, resume, roll back (wiring.rollout_ctx)."""
"""Set with the Kubernetes runtime only (wiring.background_contexts adds its loop then)."""
