"""Warm (unbound) and bound openclaw.json, and the tuning settings: pure functions, as dicts."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.agent.openclaw_config import (
    DEFAULT_WEBHOOK_PATH,
    PLACEHOLDER_BOT_TOKEN,
    TENANT_AGENT_ID,
    WARM_AGENT_ID,
    GatewayTuning,
    ModelProvider,
    render_bound_config,
    render_openclaw_config,
    render_warm_config,
    tuning_from_settings,
)
from daemon.settings import Settings, SettingsError, load_settings

PROVIDER = ModelProvider(name="otm", base_url="http://127.0.0.1:9/v1", model_id="m", api_key="k")
WARM: dict[str, Any] = {
    "warm_secret": "warm-secret",
    "workspace_dir": "/w/state/warm-workspace",
    "listeners": {
        "webhook_host": "127.0.0.1",
        "webhook_port": 18001,
        "webhook_path": DEFAULT_WEBHOOK_PATH,
        "gateway_port": 18002,
        "gateway_bind": "loopback",
    },
    "api_root": "http://127.0.0.1:9000",
    "gateway_token": "gw-warm",
    "hooks_token": "hk-warm",
    "model_provider": PROVIDER,
}
TENANT: dict[str, Any] = {
    "tenant_id": "alice",
    "bot_token": "42:tenant-token",
    "webhook_url": "http://127.0.0.1:8080/tg/alice",
    "webhook_secret": "tenant-secret",
    "workspace_dir": "/w/state/workspace",
    "api_root": "http://127.0.0.1:9000",
}


def test_warm_config_carries_no_tenant_and_runs_the_throwaway_agent() -> None:
    config = render_warm_config(**WARM, telegram="placeholder")
    telegram = config["channels"]["telegram"]
    assert telegram["botToken"] == PLACEHOLDER_BOT_TOKEN
    assert telegram["webhookSecret"] == "warm-secret"
    assert telegram["dmPolicy"] == "disabled"  # nobody talks to an unbound gateway
    assert config["agents"]["entries"] == {WARM_AGENT_ID: {"workspace": "/w/state/warm-workspace"}}
    assert config["agents"]["defaults"]["model"] == {"primary": "otm/m"}
    assert config["gateway"]["controlUi"] == {"enabled": False}
    assert config["models"]["catalogRefresh"] == {"enabled": False}


def test_warm_config_with_telegram_disabled_keeps_only_the_listener_keys() -> None:
    config = render_warm_config(**WARM, telegram="disabled")
    assert config["channels"]["telegram"] == {
        "enabled": False,
        "webhookHost": "127.0.0.1",
        "webhookPort": 18001,
        "webhookPath": "/telegram-webhook",
    }


@pytest.mark.parametrize("mode", ["placeholder", "disabled"])
def test_bound_config_swaps_only_what_hot_reloads(mode: str) -> None:
    warm = render_warm_config(**WARM, telegram=mode)  # type: ignore[arg-type]
    bound = render_bound_config(warm, **TENANT)
    assert bound["channels"]["telegram"] == {
        "enabled": True,
        "botToken": "42:tenant-token",
        "webhookUrl": "http://127.0.0.1:8080/tg/alice",
        "webhookSecret": "tenant-secret",
        # The running listener stays where it is.
        "webhookHost": "127.0.0.1",
        "webhookPort": 18001,
        "webhookPath": "/telegram-webhook",
        "apiRoot": "http://127.0.0.1:9000",
        "dmPolicy": "open",
        "allowFrom": ["*"],
    }
    # The tenant's agent under the id its snapshot uses; the warm agent is gone.
    assert bound["agents"]["entries"] == {TENANT_AGENT_ID: {"workspace": "/w/state/workspace"}}
    assert bound["agents"]["defaults"]["workspace"] == "/w/state/workspace"
    # Everything that would need a restart is the warm gateway's, unchanged.
    for key in ("gateway", "hooks", "models", "plugins", "session", "update"):
        assert bound[key] == warm[key], key
    # The warm dict is not mutated (the pool keeps it to re-render).
    assert warm["agents"]["entries"] == {WARM_AGENT_ID: {"workspace": "/w/state/warm-workspace"}}


def test_bound_config_equals_a_cold_config_apart_from_the_agent_entry() -> None:
    """A bound gateway runs the tenant exactly as a cold start would: same account, model,
    tuning; so the snapshot it leaves has the cold layout (agents/main/, workspace/)."""
    warm = render_warm_config(**WARM)
    bound = render_bound_config(warm, **TENANT)
    cold = render_openclaw_config(
        **{k: v for k, v in TENANT.items()},
        webhook_host="127.0.0.1",
        webhook_port=18001,
        gateway_port=18002,
        gateway_bind="loopback",
        gateway_token="gw-warm",
        hooks_token="hk-warm",
        model_provider=PROVIDER,
    )
    assert bound["agents"].pop("entries") == {TENANT_AGENT_ID: {"workspace": "/w/state/workspace"}}
    assert bound == cold


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"webhook_secret": ""}, "secret"),
        ({"bot_token": "no-colon"}, "bot token"),
        ({"tenant_id": "Bad_Id"}, "DNS label"),
        ({"api_root": "http://x/bot42:abc"}, "root only"),
    ],
)
def test_bound_config_refuses_what_openclaw_would_refuse(
    override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_bound_config(render_warm_config(**WARM), **{**TENANT, **override})


def test_tuning_renders_session_maintenance_and_the_plugin_allow_list() -> None:
    base: dict[str, Any] = {
        "tenant_id": "t",
        "bot_token": "1:x",
        "webhook_url": "http://r/tg/t",
        "webhook_secret": "s",
        "workspace_dir": "/w",
        "gateway_bind": "loopback",
    }
    default = render_openclaw_config(**base)
    assert default["session"] == {"maintenance": {"mode": "warn"}}
    assert default["plugins"] == {"allow": ["telegram"], "slots": {"memory": "none"}}
    with_memory = render_openclaw_config(
        **base,
        tuning=GatewayTuning(
            session_maintenance="enforce", plugins_allow=("telegram", "memory-core")
        ),
    )
    assert with_memory["session"] == {"maintenance": {"mode": "enforce"}}
    assert with_memory["plugins"] == {"allow": ["telegram", "memory-core"]}
    everything = render_openclaw_config(**base, tuning=GatewayTuning(plugins_allow=()))
    assert "plugins" not in everything


def test_tuning_comes_from_documented_settings() -> None:
    assert tuning_from_settings(Settings()) == GatewayTuning()
    settings = load_settings(env={"OTM_AGENT_SESSION_MAINTENANCE": "enforce"})
    assert tuning_from_settings(settings) == GatewayTuning(session_maintenance="enforce")
    settings = load_settings(env={"OTM_AGENT_PLUGINS_ALLOW": "telegram memory-core"})
    assert tuning_from_settings(settings).plugins_allow == ("telegram", "memory-core")
    with pytest.raises(SettingsError, match="agent_session_maintenance"):
        load_settings(env={"OTM_AGENT_SESSION_MAINTENANCE": "sometimes"})
