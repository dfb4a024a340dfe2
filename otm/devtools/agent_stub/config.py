"""The stand-in agent's settings: the tenant's ``openclaw.json`` plus a few environment knobs.

Paths follow OpenClaw: the config is ``$OPENCLAW_CONFIG_PATH``, else
``$OPENCLAW_STATE_DIR/openclaw.json``; the state dir is ``$OPENCLAW_STATE_DIR``, else
``$HOME/.openclaw``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_API_ROOT = "https://api.telegram.org"
DEFAULT_WEBHOOK_PATH = "/telegram-webhook"
DEFAULT_GATEWAY_PORT = 18789
DEFAULT_WEBHOOK_PORT = 8787
OPENCLAW_DRAIN_BUDGET_S = 315.0
"""OpenClaw's own drain budget on SIGTERM; the stub keeps it unless told otherwise."""


class ConfigError(Exception):
    """The config is unusable; the process exits non-zero, like OpenClaw refusing to start."""


@dataclass(frozen=True)
class DmPolicy:
    policy: str
    """``open``, ``allowlist``, ``pairing`` (OpenClaw's default) or ``disabled``."""
    allow_from: frozenset[str]

    def allows(self, user_id: str) -> bool:
        return "*" in self.allow_from or user_id in self.allow_from


@dataclass(frozen=True)
class TelegramConfig:
    bot_token: str
    webhook_url: str
    webhook_secret: str
    webhook_host: str
    webhook_port: int
    webhook_path: str
    api_root: str
    dm: DmPolicy


@dataclass(frozen=True)
class ModelConfig:
    """The primary model, when it is an ``openai-completions`` custom provider."""

    base_url: str
    api_key: str
    model_id: str


@dataclass(frozen=True)
class HooksConfig:
    token: str
    path: str


@dataclass(frozen=True)
class AgentSettings:
    state_dir: Path
    config_path: Path
    gateway_host: str
    gateway_port: int
    gateway_token: str | None
    telegram: TelegramConfig | None
    """None when no Telegram webhook is configured (the stub does no long polling)."""
    telegram_problem: str | None
    """Why Telegram cannot start, e.g. a webhook without a secret; reported by /readyz."""
    model: ModelConfig | None
    hooks: HooksConfig | None
    agent_id: str
    """The one agent of ``agents.entries`` (OpenClaw resolves a single agent implicitly), else
    ``main``; its files live under ``agents/<id>/agent/``."""
    boot_delay_s: float
    """``OTM_AGENT_BOOT_DELAY_S``: simulated boot time before any port opens."""
    drain_timeout_s: float
    """``OTM_AGENT_DRAIN_TIMEOUT_S``: how long SIGTERM waits for in-flight turns."""
    retry_initial_s: float
    """``OTM_AGENT_RETRY_INITIAL_S``: first Bot API retry delay (OpenClaw: 5 s, doubling)."""
    retry_max_s: float
    """``OTM_AGENT_RETRY_MAX_S``: longest Bot API retry delay (OpenClaw: 60 s)."""


def resolve_paths(env: Mapping[str, str]) -> tuple[Path, Path]:
    """(state dir, config path) as OpenClaw resolves them."""
    if env.get("OPENCLAW_STATE_DIR"):
        state_dir = Path(env["OPENCLAW_STATE_DIR"])
    else:
        state_dir = Path(env.get("HOME") or Path.home()) / ".openclaw"
    if env.get("OPENCLAW_CONFIG_PATH"):
        config_path = Path(env["OPENCLAW_CONFIG_PATH"])
    else:
        config_path = state_dir / "openclaw.json"
    return state_dir, config_path


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"Missing config {path}. Run openclaw setup.") from e
    except ValueError as e:
        raise ConfigError(f"Invalid JSON in {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def _section(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return dict(node) if isinstance(node, Mapping) else {}


def _float_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r} is not a number") from e


def parse_dm_policy(telegram: Mapping[str, Any]) -> DmPolicy:
    allow = telegram.get("allowFrom") or []
    return DmPolicy(
        policy=str(telegram.get("dmPolicy") or "pairing"),
        allow_from=frozenset(str(a) for a in allow) if isinstance(allow, list) else frozenset(),
    )


def _parse_telegram(
    data: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[TelegramConfig | None, str | None]:
    tg = _section(data, "channels", "telegram")
    if not tg or tg.get("enabled") is False or not tg.get("webhookUrl"):
        return None, None
    token = str(tg.get("botToken") or env.get("TELEGRAM_BOT_TOKEN") or "")
    secret = str(tg.get("webhookSecret") or "")
    if not token:
        return None, "Telegram bot token missing (channels.telegram.botToken)"
    if not secret:
        return None, (
            "Telegram webhook mode requires a non-empty secret token. "
            "Set channels.telegram.webhookSecret in your config."
        )
    path = str(tg.get("webhookPath") or DEFAULT_WEBHOOK_PATH)
    if path == "/healthz":
        return None, "channels.telegram.webhookPath must differ from /healthz"
    return (
        TelegramConfig(
            bot_token=token,
            webhook_url=str(tg["webhookUrl"]),
            webhook_secret=secret,
            webhook_host=str(tg.get("webhookHost") or "127.0.0.1"),
            webhook_port=int(tg.get("webhookPort") or DEFAULT_WEBHOOK_PORT),
            webhook_path=path,
            api_root=str(tg.get("apiRoot") or DEFAULT_API_ROOT).rstrip("/"),
            dm=parse_dm_policy(tg),
        ),
        None,
    )


def _parse_model(data: Mapping[str, Any]) -> ModelConfig | None:
    primary = _section(data, "agents", "defaults", "model").get("primary")
    if not isinstance(primary, str) or "/" not in primary:
        return None
    provider_name, model_id = primary.split("/", 1)
    provider = _section(data, "models", "providers", provider_name)
    if not provider.get("baseUrl"):
        return None
    if str(provider.get("api") or "openai-completions") != "openai-completions":
        raise ConfigError(f"agent stub only speaks openai-completions (provider {provider_name})")
    return ModelConfig(
        base_url=str(provider["baseUrl"]).rstrip("/"),
        api_key=str(provider.get("apiKey") or ""),
        model_id=model_id,
    )


def _agent_id(data: Mapping[str, Any]) -> str:
    entries = _section(data, "agents", "entries")
    if len(entries) > 1:
        raise ConfigError("agent stub serves one agent: agents.entries has more than one")
    return next(iter(entries), "main")


def _bind_host(bind: str, gateway: Mapping[str, Any]) -> str:
    if bind == "loopback":
        return "127.0.0.1"
    if bind == "custom" and gateway.get("customBindHost"):
        return str(gateway["customBindHost"])
    return "0.0.0.0"


def load_settings(env: Mapping[str, str] | None = None) -> AgentSettings:
    env = os.environ if env is None else env
    state_dir, config_path = resolve_paths(env)
    data = read_config_file(config_path)
    gateway = _section(data, "gateway")
    bind = str(gateway.get("bind") or "loopback")
    token = env.get("OPENCLAW_GATEWAY_TOKEN") or _section(gateway, "auth").get("token")
    if bind != "loopback" and not token:
        raise ConfigError(f"Refusing to bind gateway to {bind} without auth.")
    port = int(env.get("OPENCLAW_GATEWAY_PORT") or gateway.get("port") or DEFAULT_GATEWAY_PORT)
    hooks_section = _section(data, "hooks")
    hooks = None
    if hooks_section.get("enabled") and hooks_section.get("token"):
        hooks = HooksConfig(
            token=str(hooks_section["token"]),
            path="/" + str(hooks_section.get("path") or "/hooks").strip("/"),
        )
    telegram, telegram_problem = _parse_telegram(data, env)
    return AgentSettings(
        state_dir=state_dir,
        config_path=config_path,
        gateway_host=_bind_host(bind, gateway),
        gateway_port=port,
        gateway_token=str(token) if token else None,
        telegram=telegram,
        telegram_problem=telegram_problem,
        model=_parse_model(data),
        hooks=hooks,
        agent_id=_agent_id(data),
        boot_delay_s=_float_env(env, "OTM_AGENT_BOOT_DELAY_S", 0.0),
        drain_timeout_s=_float_env(env, "OTM_AGENT_DRAIN_TIMEOUT_S", OPENCLAW_DRAIN_BUDGET_S),
        retry_initial_s=_float_env(env, "OTM_AGENT_RETRY_INITIAL_S", 5.0),
        retry_max_s=_float_env(env, "OTM_AGENT_RETRY_MAX_S", 60.0),
    )


class DmPolicySource:
    """The current DM policy, re-read when ``openclaw.json`` changes on disk.

    OpenClaw hot-reloads ``dmPolicy``/``allowFrom`` without a restart; so does the stub.
    """

    def __init__(self, config_path: Path, initial: DmPolicy) -> None:
        self._path = config_path
        self._policy = initial
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        # Inode, nanosecond mtime and size: a truncate and the write after it can share
        # one coarse mtime, the size still tells them apart.
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> DmPolicy:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            # A half-written file raises: keep the last good policy, and look again at
            # the next message (the stamp moves on only with a file that parsed).
            with contextlib.suppress(ConfigError):
                self._policy = parse_dm_policy(
                    _section(read_config_file(self._path), "channels", "telegram")
                )
                self._stamp = stamp
        return self._policy
