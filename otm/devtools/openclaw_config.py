"""Render a tenant's ``openclaw.json``: one pure function for tests, the local demo and production.

The shape follows the measured behaviour of OpenClaw 2026.9.6 (see the runtime notes):

- Telegram runs in webhook mode (``webhookUrl`` set) with a mandatory ``webhookSecret``; the local
  listener is ``webhookHost:webhookPort`` on the exact ``webhookPath``.
- ``apiRoot`` points the Bot API client elsewhere (a fake in tests). Without it OpenClaw talks to
  api.telegram.org, and offline it even falls back to a hard-coded Telegram IP.
- ``dmPolicy`` decides whether an LLM call happens at all; ``open`` needs ``allowFrom: ["*"]``.
- A non-loopback gateway bind is refused without a gateway token.
- The heartbeat is off by default: each heartbeat is an LLM call on an otherwise idle tenant.
- ``update.checkOnStart`` is off: no registry lookups at boot.

OpenClaw validates its config strictly, so only keys it knows are emitted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

DmPolicy = Literal["open", "allowlist", "pairing", "disabled"]
GatewayBind = Literal["loopback", "lan", "tailnet", "auto", "custom"]

DEFAULT_WEBHOOK_PATH = "/telegram-webhook"
_TENANT_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ModelProvider:
    """A custom OpenAI-compatible model provider (``models.providers.<name>``)."""

    name: str
    base_url: str
    """Ends in ``/v1`` for OpenAI-compatible servers."""
    model_id: str
    api_key: str
    api: str = "openai-completions"
    model_name: str | None = None
    context_window: int = 32000
    max_tokens: int = 1024

    @property
    def primary(self) -> str:
        """The ``agents.defaults.model.primary`` reference: ``<provider>/<model id>``."""
        return f"{self.name}/{self.model_id}"


def render_openclaw_config(
    *,
    tenant_id: str,
    bot_token: str,
    webhook_url: str,
    webhook_secret: str,
    webhook_host: str = "0.0.0.0",
    webhook_port: int = 8787,
    webhook_path: str = DEFAULT_WEBHOOK_PATH,
    api_root: str | None = None,
    gateway_port: int = 18789,
    gateway_bind: GatewayBind = "lan",
    gateway_token: str | None = None,
    hooks_token: str | None = None,
    workspace_dir: str,
    model_provider: ModelProvider | None = None,
    dm_policy: DmPolicy = "open",
    allow_from: Sequence[str | int] | None = None,
    heartbeat_every: str = "0m",
) -> dict[str, Any]:
    """The ``openclaw.json`` document for one tenant, as a dict (serialise with ``json.dumps``).

    ``allow_from`` defaults to ``["*"]`` for ``open`` and is required for ``allowlist``.
    ``hooks_token`` enables ``/hooks/*`` on the gateway port; None leaves hooks off.
    Raises ValueError for a config OpenClaw would refuse or that would silently misbehave.
    """
    if not _TENANT_ID.match(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} is not a DNS label")
    if not bot_token or ":" not in bot_token:
        raise ValueError(f"tenant {tenant_id}: bot token must look like '<id>:<secret>'")
    if not webhook_secret:
        # OpenClaw refuses to start the channel: "webhook mode requires a non-empty secret token".
        raise ValueError(f"tenant {tenant_id}: webhook secret must not be empty")
    if not webhook_url:
        raise ValueError(f"tenant {tenant_id}: webhook url must not be empty")
    if not webhook_path.startswith("/") or webhook_path == "/healthz":
        raise ValueError(
            f"tenant {tenant_id}: webhook path must start with '/' and not be /healthz"
        )
    if webhook_port == gateway_port:
        raise ValueError(f"tenant {tenant_id}: webhook and gateway ports must differ")
    if api_root is not None and re.search(r"/bot[^/]*/?$", urlsplit(api_root).path):
        # OpenClaw appends /bot<token>/<method> itself; a root that has it breaks every call.
        raise ValueError(f"tenant {tenant_id}: api_root must be the root only, without /bot<token>")
    if gateway_bind != "loopback" and not gateway_token:
        raise ValueError(
            f"tenant {tenant_id}: a {gateway_bind!r} gateway bind needs a gateway token"
        )

    allowed = [str(a) for a in allow_from] if allow_from is not None else None
    if dm_policy == "open":
        allowed = allowed if allowed is not None else ["*"]
        if "*" not in allowed:
            raise ValueError(f"tenant {tenant_id}: dm_policy 'open' needs '*' in allow_from")
    elif dm_policy == "allowlist" and not allowed:
        raise ValueError(f"tenant {tenant_id}: dm_policy 'allowlist' needs user ids in allow_from")

    telegram: dict[str, Any] = {
        "enabled": True,
        "botToken": bot_token,
        "webhookUrl": webhook_url,
        "webhookSecret": webhook_secret,
        "webhookHost": webhook_host,
        "webhookPort": webhook_port,
        "webhookPath": webhook_path,
        "dmPolicy": dm_policy,
    }
    if allowed is not None:
        telegram["allowFrom"] = allowed
    if api_root is not None:
        telegram["apiRoot"] = api_root.rstrip("/")

    gateway: dict[str, Any] = {"mode": "local", "bind": gateway_bind, "port": gateway_port}
    if gateway_token:
        gateway["auth"] = {"mode": "token", "token": gateway_token}

    defaults: dict[str, Any] = {"workspace": workspace_dir, "heartbeat": {"every": heartbeat_every}}
    config: dict[str, Any] = {
        "channels": {"telegram": telegram},
        "gateway": gateway,
        "agents": {"defaults": defaults},
        "update": {"checkOnStart": False},
    }
    if hooks_token:
        config["hooks"] = {"enabled": True, "token": hooks_token, "path": "/hooks"}
    if model_provider is not None:
        defaults["model"] = {"primary": model_provider.primary}
        config["models"] = {
            "providers": {
                model_provider.name: {
                    "baseUrl": model_provider.base_url,
                    "apiKey": model_provider.api_key,
                    "api": model_provider.api,
                    "models": [
                        {
                            "id": model_provider.model_id,
                            "name": model_provider.model_name or model_provider.model_id,
                            "input": ["text"],
                            "contextWindow": model_provider.context_window,
                            "maxTokens": model_provider.max_tokens,
                        }
                    ],
                }
            }
        }
    return config
