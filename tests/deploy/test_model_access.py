"""Model access in the deployment: tenants reach a model only through the daemon's gateway,
with their own key; no provider credential is in any tenant pod, Secret or openclaw.json;
the eks overlay configures Bedrock and the daemon's role may invoke that model only."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from daemon.agent.openclaw_config import model_provider
from daemon.kube import manifests, names
from tests.deploy import inventory as inv
from tests.deploy.daemon_env import daemon_env, daemon_settings
from tests.deploy.iam_docs import ACCOUNT_ID, BEDROCK_MODEL_ID, REGION, load, pod_session
from tests.deploy.iam_eval import is_allowed
from tests.deploy.render import KUSTOMIZE_ROOT
from tests.support.records import sample_launch

Doc = dict[str, Any]
UPSTREAM_KEY = "sk-provider-credential-SENTINEL"
AWS_SECRET = "aws-secret-access-key-SENTINEL"
TENANT_KEY = "otm-mk-alice.k1.0123456789abcdef"


def _site(overlay: str) -> dict[str, str]:
    text = (KUSTOMIZE_ROOT / "overlays" / overlay / "site.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip())


def _model_arn(model: str, region: str = REGION) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model}"


def test_eks_overlay_configures_bedrock_behind_the_gateway(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["eks"]
    settings = daemon_settings(docs)
    assert settings.model_upstream == "bedrock" and settings.model_gateway_enabled
    assert settings.bedrock_model_id == _site("eks")["BEDROCK_MODEL_ID"] == BEDROCK_MODEL_ID
    assert settings.bedrock_endpoint_url is None  # the real regional endpoint
    assert settings.model_gateway_host == "0.0.0.0"
    assert settings.model_gateway_port == names.DAEMON_MODEL_GATEWAY_PORT
    service = inv.find(docs, "Service", names.MODEL_GATEWAY_SERVICE, names.DAEMON_NAMESPACE)
    assert service is not None
    [port] = service["spec"]["ports"]
    assert port["port"] == names.DAEMON_MODEL_GATEWAY_PORT
    assert settings.model_gateway_url == (
        f"http://{names.MODEL_GATEWAY_SERVICE}.{names.DAEMON_NAMESPACE}.svc.cluster.local:"
        f"{port['port']}/v1"
    )
    # The daemon holds no static provider credential either: Bedrock through its role.
    env = daemon_env(docs)
    assert not [k for k in env if k.startswith("AWS_") and k != "AWS_REGION"]
    assert "OTM_AGENT_MODEL_API_KEY" not in env
    assert settings.model_requests_per_min > 0 and settings.model_tokens_per_day > 0
    assert settings.inbound_messages_per_min > 0
    assert BEDROCK_MODEL_ID in dict(p.split("=", 1) for p in settings.model_prices)


@pytest.mark.parametrize("upstream", ["bedrock", "openai"])
def test_no_provider_credential_in_any_rendered_tenant_object(
    rendered: dict[str, list[Doc]], upstream: str
) -> None:
    settings = dataclasses.replace(
        daemon_settings(rendered["eks"]),
        model_upstream=upstream,
        agent_model_base_url="https://api.provider.example/v1",
        agent_model_api_key=UPSTREAM_KEY,
    )
    launch = sample_launch("alice", model_key=TENANT_KEY)
    ps = manifests.PodSettings.from_settings(settings)
    config = manifests.render_tenant_config(
        launch,
        webhook_url="https://otm.example.com/tg/alice",
        api_root=None,
        model_provider=model_provider(settings, launch.model_key),
    )
    text = manifests.config_json(config)
    secret = manifests.tenant_secret(launch, text, namespace=ps.namespace)
    pod = manifests.tenant_pod("alice", settings=ps)
    warm = manifests.warm_pod(settings=ps)
    warm_config = manifests.render_warm_pod_config(
        ps,
        api_root=None,
        model_provider=model_provider(settings),
        gateway_token="replaced-at-boot",
        hooks_token="hooks-token-0123456789",
    )
    bound = manifests.render_bound_pod_config(
        warm_config,
        launch,
        webhook_url="https://otm.example.com/tg/alice",
        api_root=None,
        model_provider=model_provider(settings, launch.model_key),
    )
    # sync_env (the vended, tenant-scoped S3 session) is left out: its AWS_* variable
    # names are checked below against provider credentials only.
    bind = manifests.bind_request(launch.tenant_id, bound)
    provider = config["models"]["providers"]["otm"]
    assert (provider["baseUrl"], provider["apiKey"]) == (settings.model_gateway_url, TENANT_KEY)
    # A warm pod is bound to the gateway with the tenant's key; the warm config has none.
    assert bind["config"]["models"]["providers"]["otm"]["apiKey"] == TENANT_KEY
    assert TENANT_KEY not in json.dumps(warm_config)
    for name, obj in {
        "openclaw.json": config,
        "secret": secret,
        "pod": pod,
        "warm pod": warm,
        "warm config": warm_config,
        "bind request": bind,
    }.items():
        dumped = json.dumps(obj)
        assert UPSTREAM_KEY not in dumped, name
        assert "api.provider.example" not in dumped, name
        assert "AWS_SECRET_ACCESS_KEY" not in dumped and "AWS_ACCESS_KEY_ID" not in dumped, name
    # The tenant key travels in the Secret's openclaw.json only, never in a pod's spec.
    assert TENANT_KEY not in json.dumps(pod) + json.dumps(warm)


def test_daemon_role_invokes_only_the_configured_model() -> None:
    policy = load("daemon-policy.json")
    model = _model_arn(BEDROCK_MODEL_ID)
    for action in ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"):
        assert is_allowed(policy, action, model, {})
        assert not is_allowed(policy, action, _model_arn("anthropic.claude-opus-4-v1:0"), {})
        assert not is_allowed(policy, action, _model_arn(BEDROCK_MODEL_ID, "eu-west-1"), {})
    for action in (
        "bedrock:CreateModelCustomizationJob",
        "bedrock:PutModelInvocationLoggingConfiguration",
        "bedrock:ListFoundationModels",
    ):
        assert not is_allowed(policy, action, model, {})
        assert not is_allowed(policy, action, "*", {})
    assert ACCOUNT_ID  # placeholders filled
    tenant = load("tenant-policy.json")
    alice = pod_session(names.tenant_pod_name("alice"))
    for action in ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"):
        assert not is_allowed(tenant, action, model, alice)
