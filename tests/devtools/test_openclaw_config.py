"""render_openclaw_config (daemon/agent/openclaw_config.py) is a pure function: tested as dicts."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.agent.openclaw_config import ModelProvider, render_openclaw_config

BASE: dict[str, Any] = {
    "tenant_id": "t2",
    "bot_token": "42:fake",
    "webhook_url": "https://router.example/tg/t2",
    "webhook_secret": "s3cret",
    "workspace_dir": "/home/node/.openclaw/workspace",
    "gateway_token": "gw",
}


def test_test_tier_config_matches_the_measured_working_shape() -> None:
    config = render_openclaw_config(
        **{**BASE, "gateway_token": "gw"},
        webhook_host="127.0.0.1",
        webhook_port=18001,
        webhook_path="/tg/t2",
        api_root="http://127.0.0.1:9000/",
        gateway_port=18002,
        gateway_bind="loopback",
        hooks_token="hk",
        model_provider=ModelProvider(
            name="stub", base_url="http://127.0.0.1:9001/v1", model_id="stub-model", api_key="x"
        ),
    )
    assert config == {
        "channels": {
            "telegram": {
                "enabled": True,
                "botToken": "42:fake",
                "webhookUrl": "https://router.example/tg/t2",
                "webhookSecret": "s3cret",
                "webhookHost": "127.0.0.1",
                "webhookPort": 18001,
                "webhookPath": "/tg/t2",
                "apiRoot": "http://127.0.0.1:9000",
                "dmPolicy": "open",
                "allowFrom": ["*"],
            }
        },
        "hooks": {"enabled": True, "token": "hk", "path": "/hooks"},
        # The measured boot/first-turn tuning (GatewayTuning defaults).
        "session": {"maintenance": {"mode": "warn"}},
        "plugins": {"allow": ["telegram"], "slots": {"memory": "none"}},
        "models": {
            "catalogRefresh": {"enabled": False},
            "providers": {
                "stub": {
                    "baseUrl": "http://127.0.0.1:9001/v1",
                    "apiKey": "x",
                    "api": "openai-completions",
                    "models": [
                        {
                            "id": "stub-model",
                            "name": "stub-model",
                            "input": ["text"],
                            "contextWindow": 32000,
                            "maxTokens": 1024,
                        }
                    ],
                }
            },
        },
        "agents": {
            "defaults": {
                "workspace": "/home/node/.openclaw/workspace",
                "model": {"primary": "stub/stub-model"},
                "heartbeat": {"every": "0m"},
            }
        },
        "update": {"checkOnStart": False},
        "gateway": {
            "mode": "local",
            "bind": "loopback",
            "port": 18002,
            "controlUi": {"enabled": False},
            "auth": {"mode": "token", "token": "gw"},
        },
    }


def test_production_defaults_listen_on_all_interfaces_with_the_default_path() -> None:
    config = render_openclaw_config(**BASE)
    telegram = config["channels"]["telegram"]
    assert (telegram["webhookHost"], telegram["webhookPort"], telegram["webhookPath"]) == (
        "0.0.0.0",
        8787,
        "/telegram-webhook",
    )
    assert "apiRoot" not in telegram
    assert config["gateway"] == {
        "mode": "local",
        "bind": "lan",
        "port": 18789,
        "controlUi": {"enabled": False},
        "auth": {"mode": "token", "token": "gw"},
    }
    assert "hooks" not in config
    assert config["models"] == {"catalogRefresh": {"enabled": False}}
    assert "model" not in config["agents"]["defaults"]


def test_allowlist_keeps_user_ids_as_strings() -> None:
    config = render_openclaw_config(**BASE, dm_policy="allowlist", allow_from=[111, "222"])
    assert config["channels"]["telegram"]["dmPolicy"] == "allowlist"
    assert config["channels"]["telegram"]["allowFrom"] == ["111", "222"]


def test_pairing_without_allow_from_omits_the_key() -> None:
    config = render_openclaw_config(**BASE, dm_policy="pairing")
    assert "allowFrom" not in config["channels"]["telegram"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"webhook_secret": ""}, "secret"),
        ({"tenant_id": "Bad_Id"}, "DNS label"),
        ({"bot_token": "nocolon"}, "bot token"),
        ({"webhook_path": "/healthz"}, "webhook path"),
        ({"webhook_path": "no-slash"}, "webhook path"),
        ({"api_root": "http://x/bot42:fake"}, "api_root"),
        ({"gateway_token": None}, "gateway token"),
        ({"dm_policy": "allowlist"}, "allowlist"),
        ({"allow_from": ["111"]}, "'open' needs"),
        ({"webhook_port": 18789}, "ports must differ"),
    ],
)
def test_configs_openclaw_would_refuse_are_rejected(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_openclaw_config(**{**BASE, **override})


def test_loopback_gateway_needs_no_token() -> None:
    config = render_openclaw_config(**{**BASE, "gateway_token": None}, gateway_bind="loopback")
    assert "auth" not in config["gateway"]


def test_api_root_on_a_host_named_bot_is_fine() -> None:
    config = render_openclaw_config(**{**BASE, "api_root": "http://bot.api"})
    assert config["channels"]["telegram"]["apiRoot"].startswith("http://bot.api")
