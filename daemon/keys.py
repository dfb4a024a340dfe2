"""Typed aiohttp AppKeys: the daemon's shared resources, set by cleanup contexts."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from daemon.coordination import Coordination
from daemon.metrics import Metrics
from daemon.orchestrator import Orchestrator
from daemon.ports import Registry, Runtime, StateStore
from daemon.settings import Settings
from daemon.tasks import TaskGroup
from daemon.telegram import BotApi

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
TASKS = web.AppKey("tasks", TaskGroup)
REDIS = web.AppKey("redis", aioredis.Redis)
COORDINATION = web.AppKey("coordination", Coordination)
REGISTRY = web.AppKey("registry", Registry)
STATE_STORE = web.AppKey("state_store", StateStore)
RUNTIME = web.AppKey("runtime", Runtime)
HTTP = web.AppKey("http", aiohttp.ClientSession)
BOT_API = web.AppKey("bot_api", BotApi)
ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)
ROUTER_URL = web.AppKey("router_url", str)
