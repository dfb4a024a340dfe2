from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import (
    Settings,
    SettingsError,
    describe,
    load_settings,
    longest_wake_s,
    wake_timeout_s,
)


def test_defaults_are_the_embedded_default() -> None:
    s = load_settings(env={})
    assert (s.registry, s.state_store, s.runtime, s.redis_url) == ("sqlite", "dir", "local", None)
    assert s.data_dir == Path.home() / ".otm"


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "otm.yaml"
    cfg.write_text("router_port: 1111\nadmin_port: 2222\nlog_level: DEBUG\n")
    env = {"OTM_CONFIG": str(cfg), "OTM_ADMIN_PORT": "3333", "OTM_WAKE_TIMEOUT_S": "12.5"}
    s = load_settings(flags={"admin_port": 4444}, env=env)
    assert s.router_port == 1111  # file
    assert s.admin_port == 4444  # flag beats env beats file
    assert s.log_level == "DEBUG"
    assert s.wake_timeout_s == 12.5
    assert load_settings(env=env).admin_port == 3333


def test_aws_endpoint_variables_and_otm_override() -> None:
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:2",
    }
    s = load_settings(env=env)
    assert s.dynamodb_endpoint_url == "http://127.0.0.1:1"
    assert s.s3_endpoint_url == "http://127.0.0.1:2"
    s = load_settings(env={**env, "OTM_S3_ENDPOINT_URL": "http://127.0.0.1:3"})
    assert s.s3_endpoint_url == "http://127.0.0.1:3"


def test_agent_command_is_split_like_a_shell() -> None:
    s = load_settings(env={"OTM_AGENT_COMMAND": "node '/opt/open claw/openclaw.mjs' gateway"})
    assert s.agent_command == ("node", "/opt/open claw/openclaw.mjs", "gateway")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OTM_ROUTER_PORT": "http"}, "router_port: expected an integer"),
        ({"OTM_ROUTER_PORT": "70000"}, "not a TCP port"),
        ({"OTM_REGISTRY": "postgres"}, "registry: expected one of sqlite, dynamodb"),
        ({"OTM_DEFAULT_IDLE_TIMEOUT_S": "0"}, "must be positive"),
        ({"OTM_ADMIN_ACCESS_LOG": "maybe"}, "admin_access_log: expected true or false"),
        ({"OTM_AUDIT_MAX_ENTRIES": "0"}, "audit_max_entries and audit_retention_days"),
        ({"OTM_INGRESS": "pigeon"}, "ingress: expected one of webhook, polling"),
        ({"OTM_POLL_TIMEOUT_S": "51"}, "poll_timeout_s must be between 1 and 50"),
        ({"OTM_GC_YOUNG_THRESHOLD": "-1"}, "gc_young_threshold must be >= 0"),
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load_settings(env=env)


def test_unknown_keys_in_file_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "otm.yaml"
    cfg.write_text("router_prot: 1\n")
    with pytest.raises(SettingsError, match="unknown settings router_prot"):
        load_settings(config_file=cfg, env={})
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(config_file=tmp_path / "missing.yaml", env={})


def test_describe_masks_secrets() -> None:
    s = Settings(admin_token="tok-123", redis_url="redis://:hunter2@127.0.0.1:6379/0")
    d = describe(s)
    assert d["admin_token"] == "***"
    assert "hunter2" not in d["redis_url"]
    assert d["redis_url"] == "redis://:***@127.0.0.1:6379/0"


def test_agent_model_settings_from_env_with_the_key_masked() -> None:
    s = load_settings(
        env={
            "OTM_AGENT_MODEL_BASE_URL": "http://127.0.0.1:8000/v1",
            "OTM_AGENT_MODEL_ID": "llama-3",
            "OTM_AGENT_MODEL_API_KEY": "sk-model-secret",
        }
    )
    assert (s.agent_model_base_url, s.agent_model_id) == ("http://127.0.0.1:8000/v1", "llama-3")
    assert s.agent_model_api_key == "sk-model-secret"
    assert describe(s)["agent_model_api_key"] == "***"
    assert "sk-model-secret" not in repr(s)
    assert "sk-model-secret" not in str(describe(s))
    unset = load_settings(env={})
    assert (unset.agent_model_base_url, unset.agent_model_api_key) == (None, None)
    assert describe(unset)["agent_model_api_key"] is None


def test_agent_model_base_url_must_be_an_http_url() -> None:
    with pytest.raises(SettingsError, match="agent_model_base_url: expected an http"):
        load_settings(env={"OTM_AGENT_MODEL_BASE_URL": "127.0.0.1:8000/v1"})


@pytest.mark.parametrize(("raw", "value"), [("false", False), ("0", False), ("TRUE", True)])
def test_boolean_settings_from_env_and_file(raw: str, value: bool, tmp_path: Path) -> None:
    assert load_settings(env={"OTM_ADMIN_ACCESS_LOG": raw}).admin_access_log is value
    config = tmp_path / "otm.yaml"
    config.write_text(f"admin_access_log: {raw.lower()}\n")
    assert load_settings(env={}, config_file=config).admin_access_log is value


def test_wake_timeout_is_per_runtime() -> None:
    """A Kubernetes cold start on a new metal node takes minutes: its own (longer) wake
    timeout, and the provisioning budget bounds how long a wake may stay provisioning."""
    local = load_settings(flags={}, env={"OTM_WAKE_TIMEOUT_S": "120"})
    assert wake_timeout_s(local) == 120 and longest_wake_s(local) == 120
    k8s = load_settings(
        flags={},
        env={
            "OTM_RUNTIME": "kubernetes",
            "OTM_WAKE_TIMEOUT_S": "120",
            "OTM_K8S_WAKE_TIMEOUT_S": "700",
            "OTM_K8S_PROVISIONING_TIMEOUT_S": "1500",
        },
    )
    assert wake_timeout_s(k8s) == 700 and longest_wake_s(k8s) == 1500
    with pytest.raises(SettingsError, match="k8s_wake_timeout_s"):
        load_settings(flags={}, env={"OTM_K8S_WAKE_TIMEOUT_S": "0"})
