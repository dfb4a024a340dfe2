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
- Boot/first-turn tuning (measured, see ``GatewayTuning``): the Control UI (a 54 MB asset
  unpack racing the first turn) and the remote model-catalog refresh are always off; session
  maintenance and the plugin allow-list are settings with trade-offs.

Three shapes, all pure functions tested as dicts:

- ``render_openclaw_config``: a tenant's gateway started cold on its own state.
- ``render_warm_config``: a pre-booted gateway with no tenant (Telegram placeholder or disabled,
  throw-away agent ``warm``), waiting to be bound.
- ``render_bound_config``: that warm gateway's config rewritten for a tenant (atomic rewrite,
  hot-reloaded without a restart): the tenant's Telegram keys and its agent ``main`` whose
  state was copied in before the write. ``main`` is an agent id the warm gateway never opened:
  re-pointing an agent a gateway has used does not carry its history (measured).

OpenClaw validates its config strictly, so only keys it knows are emitted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from daemon.settings import Settings

DmPolicy = Literal["open", "allowlist", "pairing", "disabled"]
GatewayBind = Literal["loopback", "lan", "tailnet", "auto", "custom"]


class Listeners(TypedDict):
    """Where a gateway listens: the keyword arguments of the renderers below that each
    runtime sets alike for all its agents (``**listeners``)."""

    webhook_host: str
    webhook_port: int
    webhook_path: str
    gateway_port: int
    gateway_bind: GatewayBind


DEFAULT_WEBHOOK_PATH = "/telegram-webhook"
_TENANT_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SessionMaintenance = Literal["warn", "enforce"]
WarmTelegram = Literal["placeholder", "disabled"]

TENANT_AGENT_ID = "main"
"""The agent a tenant's state lives under (``agents/main/``, session keys ``agent:main:…``): the
implicit single agent of a cold gateway, and the agent a bound warm gateway is given."""
WARM_AGENT_ID = "warm"
"""The throw-away agent a warm gateway boots with; never the tenant's."""
PLACEHOLDER_BOT_TOKEN = "1:otm-warm-placeholder"
"""Bot token of a warm gateway in ``placeholder`` mode (its Bot API must answer it)."""
MEMORY_PLUGIN = "memory-core"
PROVIDER_NAME = "otm"
API_KEY_PLACEHOLDER = "no-key"
"""Rendered when no key is set: OpenClaw expects some ``apiKey`` for a custom provider, and
servers without auth (a local vLLM, Ollama, the stub) ignore it."""


@dataclass(frozen=True)
class GatewayTuning:
    """Config keys that cut an OpenClaw gateway's boot and first turn (measured on 2026.9.6:
    together with the always-off Control UI and catalog refresh, CPU to the first reply
    31-34 → 22-26 CPU-s and the first turn 7-8 → 4-5 s)."""

    session_maintenance: SessionMaintenance = "warn"
    """``warn`` skips the SQLite maintenance-plan Worker that holds up a new session's first
    write by 3-7 s; session age/count/disk caps are then reported, not enforced (harmless
    for a one-chat tenant). ``enforce`` is OpenClaw's own behaviour."""
    plugins_allow: tuple[str, ...] = ("telegram",)
    """Only these plugins load (15 → 1 for ``telegram``: 1.5-3 CPU-s less to ready, 4-5 less
    by the first reply). The memory slot is set to ``none`` unless ``memory-core`` is listed.
    Cost: memory tools and dreaming, browser, canvas, github and provider plugins are not
    loaded. Empty: no allow-list, every bundled plugin loads."""


def tuning_from_settings(settings: Settings) -> GatewayTuning:
    return GatewayTuning(
        session_maintenance=settings.agent_session_maintenance,
        plugins_allow=tuple(settings.agent_plugins_allow),
    )


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


def model_provider(settings: Settings, api_key: str = "") -> ModelProvider | None:
    """The provider ``otm`` every agent is rendered with: the daemon's model gateway, with the
    tenant's own key (``api_key``; a placeholder for a warm gateway not yet bound). None when
    no upstream is configured. No provider credential is ever rendered: the upstream's key
    and IAM role stay with the daemon (daemon/model_gateway/)."""
    if not settings.model_gateway_enabled or not settings.model_gateway_url:
        return None
    return ModelProvider(
        name=PROVIDER_NAME,
        base_url=settings.model_gateway_url.rstrip("/"),
        model_id=settings.agent_model_id,
        api_key=api_key or API_KEY_PLACEHOLDER,
    )


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
    tuning: GatewayTuning | None = None,
) -> dict[str, Any]:
    """The ``openclaw.json`` document for one tenant, as a dict (serialise with ``json.dumps``).

    ``allow_from`` defaults to ``["*"]`` for ``open`` and is required for ``allowlist``.
    ``hooks_token`` enables ``/hooks/*`` on the gateway port; None leaves hooks off.
    ``tuning`` defaults to ``GatewayTuning()`` (the measured fast settings).
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

    telegram = _telegram_account(
        bot_token=bot_token,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_host=webhook_host,
        webhook_port=webhook_port,
        webhook_path=webhook_path,
        api_root=api_root,
        dm_policy=dm_policy,
        allowed=allowed,
    )

    # The Control UI unpacks 54 MB of assets after every start, racing the first turn.
    gateway: dict[str, Any] = {
        "mode": "local",
        "bind": gateway_bind,
        "port": gateway_port,
        "controlUi": {"enabled": False},
    }
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
    tuning = tuning if tuning is not None else GatewayTuning()
    config["session"] = {"maintenance": {"mode": tuning.session_maintenance}}
    if tuning.plugins_allow:
        plugins: dict[str, Any] = {"allow": list(tuning.plugins_allow)}
        if MEMORY_PLUGIN not in tuning.plugins_allow:
            plugins["slots"] = {"memory": "none"}
        config["plugins"] = plugins
    config["models"] = _models(model_provider)
    if model_provider is not None:
        defaults["model"] = {"primary": model_provider.primary}
    return config


def _models(model_provider: ModelProvider | None) -> dict[str, Any]:
    """The ``models`` section: ``model_provider`` as the only provider, when given."""
    # No remote catalog fetch (catalog.openclaw.ai) at boot: models come from this config.
    models: dict[str, Any] = {"catalogRefresh": {"enabled": False}}
    if model_provider is not None:
        models["providers"] = {
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
    return models


def _telegram_account(
    *,
    bot_token: str,
    webhook_url: str,
    webhook_secret: str,
    webhook_host: str,
    webhook_port: int,
    webhook_path: str,
    api_root: str | None,
    dm_policy: DmPolicy,
    allowed: list[str] | None,
) -> dict[str, Any]:
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
    return telegram


def render_warm_config(
    *,
    warm_secret: str,
    workspace_dir: str,
    listeners: Listeners,
    api_root: str | None = None,
    gateway_token: str | None = None,
    hooks_token: str | None = None,
    model_provider: ModelProvider | None = None,
    tuning: GatewayTuning | None = None,
    telegram: WarmTelegram = "placeholder",
    placeholder_webhook_url: str = "http://127.0.0.1:9/otm-warm",
) -> dict[str, Any]:
    """A pre-booted gateway's config: no tenant data, throw-away agent ``warm``.

    ``placeholder``: Telegram runs with ``PLACEHOLDER_BOT_TOKEN`` (its ``getMe``/``setWebhook``
    go to ``api_root``, which must answer that token, e.g. a fake or relay Bot API) and the
    bind is a channel restart (~0.5 s faster, measured). ``disabled``: no Bot API traffic while
    warm; the bind is a plugin reload. ``warm_secret`` (random per gateway) guards its webhook
    listener until the bind replaces it with the tenant's secret.
    """
    config = render_openclaw_config(
        tenant_id=WARM_AGENT_ID,
        bot_token=PLACEHOLDER_BOT_TOKEN,
        webhook_url=placeholder_webhook_url,
        webhook_secret=warm_secret,
        **listeners,
        api_root=api_root,
        gateway_token=gateway_token,
        hooks_token=hooks_token,
        workspace_dir=workspace_dir,
        model_provider=model_provider,
        dm_policy="disabled",
        tuning=tuning,
    )
    if telegram == "disabled":
        account = config["channels"]["telegram"]
        config["channels"]["telegram"] = {
            "enabled": False,
            **{k: account[k] for k in ("webhookHost", "webhookPort", "webhookPath")},
        }
    config["agents"]["entries"] = {WARM_AGENT_ID: {"workspace": workspace_dir}}
    return config


def render_bound_config(
    warm: Mapping[str, Any],
    *,
    tenant_id: str,
    bot_token: str,
    webhook_url: str,
    webhook_secret: str,
    workspace_dir: str,
    api_root: str | None = None,
    dm_policy: DmPolicy = "open",
    allow_from: Sequence[str | int] | None = None,
    model_provider: ModelProvider | None = None,
) -> dict[str, Any]:
    """``warm`` rewritten for a tenant, for one atomic write the running gateway hot-reloads.

    Only what hot-reloads without a restart changes (measured): the Telegram account (token,
    secret, webhook URL, Bot API root, access policy) and the agents (``warm`` → the tenant's
    ``main`` on ``workspace_dir``). The listener's host/port/path, the gateway port and its
    auth, hooks and tuning stay the warm gateway's: a restart would undo the warm boot.
    ``model_provider`` (the gateway with the tenant's key) replaces the warm one: ``models.*``
    and ``agents.defaults.model`` hot-reload in OpenClaw 2026.9.6 (its reload plan).
    """
    warm_telegram = warm["channels"]["telegram"]
    gateway = warm["gateway"]
    # The renderer's validation of every tenant-supplied key, on the warm gateway's ports.
    tenant = render_openclaw_config(
        tenant_id=tenant_id,
        bot_token=bot_token,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_host=warm_telegram["webhookHost"],
        webhook_port=warm_telegram["webhookPort"],
        webhook_path=warm_telegram["webhookPath"],
        api_root=api_root,
        gateway_port=gateway["port"],
        gateway_bind=gateway["bind"],
        gateway_token=(gateway.get("auth") or {}).get("token"),
        workspace_dir=workspace_dir,
        dm_policy=dm_policy,
        allow_from=allow_from,
    )
    bound = copy.deepcopy(dict(warm))
    bound["channels"] = {**bound["channels"], "telegram": tenant["channels"]["telegram"]}
    agents = bound["agents"]
    agents["defaults"] = {**agents["defaults"], "workspace": workspace_dir}
    agents["entries"] = {TENANT_AGENT_ID: {"workspace": workspace_dir}}
    if model_provider is not None:
        bound["models"] = _models(model_provider)
        agents["defaults"]["model"] = {"primary": model_provider.primary}
    return bound
