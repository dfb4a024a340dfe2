"""The gateway port: probes, hooks, and otm's activity endpoint.

Probes answer as OpenClaw's (``docs/gateway/health.md``), with one deliberate difference:
``/readyz`` fails with ``["telegram"]`` until Telegram init is done, instead of only after a
120 s grace, so that "ready" means "webhooks will be accepted".

``GET /otm/activity`` is otm's own addition (the real gateway does not have it): the daemon's
idle culler reads it so it never sleeps a tenant in the middle of a turn.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections import deque
from typing import Any

from aiohttp import web

from otm.devtools.agent_stub.config import HooksConfig
from otm.devtools.agent_stub.runtime import RUNTIME_KEY, AgentRuntime
from otm.devtools.agent_stub.turns import Turn

logger = logging.getLogger(__name__)

VERSION = "otm-agent-stub"
HOOK_FAILURE_LIMIT = 20
HOOK_FAILURE_WINDOW_S = 60.0
DEFAULT_COMPLETION_TIMEOUT_S = 120.0


class HookGuard:
    """Hook auth: the token, failures per client (fixed window), idempotency keys."""

    def __init__(self, config: HooksConfig) -> None:
        self.config = config
        self._failures: dict[str, deque[float]] = {}
        self.runs_by_idempotency_key: dict[str, str] = {}

    def retry_after(self, client: str) -> int | None:
        """Seconds to wait when ``client`` has failed too often, else None."""
        now = time.monotonic()
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and now - failures[0] > HOOK_FAILURE_WINDOW_S:
            failures.popleft()
        if len(failures) < HOOK_FAILURE_LIMIT:
            return None
        return int(HOOK_FAILURE_WINDOW_S - (now - failures[0])) + 1

    def record_failure(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())

    def token_ok(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        given = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        given = given or request.headers.get("X-OpenClaw-Token")
        return given is not None and hmac.compare_digest(given.encode(), self.config.token.encode())


HOOK_GUARD_KEY = web.AppKey("agent_hook_guard", HookGuard)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status, headers=headers)


async def handle_live(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "status": "live"})


async def handle_startup(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    if runtime.draining:
        return web.json_response({"ok": False, "status": "draining"}, status=503)
    return web.json_response({"ok": True, "status": "started", "version": VERSION})


async def handle_ready(request: web.Request) -> web.Response:
    failing = request.app[RUNTIME_KEY].failing_checks()
    return web.json_response(
        {"ready": not failing, "failing": failing}, status=503 if failing else 200
    )


async def handle_activity(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    last = runtime.engine.last_turn_at
    pending = runtime.pending_turns
    return web.json_response(
        {
            "busy": pending > 0,
            "pending_turns": pending,
            "last_turn_at": last.isoformat() if last else None,
        }
    )


async def handle_hook(request: web.Request) -> web.Response:
    guard = request.app[HOOK_GUARD_KEY]
    runtime = request.app[RUNTIME_KEY]
    if "token" in request.query:
        return _error(400, "query parameters are not allowed; send the token in a header")
    client = request.remote or "unknown"
    retry_after = guard.retry_after(client)
    if retry_after is not None:
        return _error(429, "too many failed attempts", {"Retry-After": str(retry_after)})
    if not guard.token_ok(request):
        guard.record_failure(client)
        return _error(401, "unauthorized")
    name = request.match_info["name"]
    if name not in ("wake", "agent"):
        return _error(404, f"unknown hook {name!r}")
    if runtime.draining:
        return _error(503, "gateway draining")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "invalid JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    if name == "wake":
        return _wake(body)
    return await _agent(request, runtime, guard, body)


def _wake(body: dict[str, Any]) -> web.Response:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return _error(400, "text required")
    mode = body.get("mode") if body.get("mode") in ("now", "next-heartbeat") else "now"
    # The stub has no heartbeat to run: the event is acknowledged as OpenClaw acknowledges it.
    return web.json_response({"ok": True, "mode": mode, "eventOutcome": "queued"})


async def _agent(
    request: web.Request, runtime: AgentRuntime, guard: HookGuard, body: dict[str, Any]
) -> web.Response:
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return _error(400, "message required")
    key = request.headers.get("Idempotency-Key")
    if key and key in guard.runs_by_idempotency_key:
        return web.json_response({"ok": True, "runId": guard.runs_by_idempotency_key[key]})
    run_id = str(uuid.uuid4())
    if key:
        guard.runs_by_idempotency_key[key] = run_id
    deliver_to = None
    if body.get("deliver") and body.get("channel", "telegram") == "telegram" and body.get("to"):
        deliver_to = str(body["to"])
    session = str(body.get("sessionKey") or f"hook:{run_id}")
    result: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    runtime.engine.submit(
        Turn(
            # Deliveries share the chat's lane so they interleave in order with its messages.
            lane=f"telegram:{deliver_to}" if deliver_to else f"hook:{session}",
            session=session,
            text=message,
            reply_chat_id=deliver_to,
            result=result,
        )
    )
    if not body.get("waitForCompletion"):
        return web.json_response({"ok": True, "runId": run_id})
    timeout_s = float(body.get("timeoutSeconds") or DEFAULT_COMPLETION_TIMEOUT_S)
    try:
        async with asyncio.timeout(timeout_s):
            text = await asyncio.shield(result)
        completion: dict[str, Any] = {"status": "ok", "text": text}
    except TimeoutError:
        completion = {"status": "timeout"}
    except RuntimeError:
        completion = {"status": "error"}
    return web.json_response({"ok": True, "runId": run_id, "completion": completion})


def create_gateway_app(runtime: AgentRuntime) -> web.Application:
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    for path in ("/healthz", "/health"):
        app.router.add_get(path, handle_live)
    for path in ("/startupz", "/startup"):
        app.router.add_get(path, handle_startup)
    for path in ("/readyz", "/ready"):
        app.router.add_get(path, handle_ready)
    app.router.add_get("/otm/activity", handle_activity)
    hooks = runtime.settings.hooks
    if hooks is not None:
        app[HOOK_GUARD_KEY] = HookGuard(hooks)
        app.router.add_post(f"{hooks.path}/{{name}}", handle_hook)
    return app
