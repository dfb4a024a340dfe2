"""Pod and Secret manifests as dicts: exact structure of the parts that matter."""

from __future__ import annotations

import dataclasses
import json

import pytest

from daemon.kube import manifests as m
from daemon.kube import names
from daemon.settings import Settings
from tests.deploy.sample_pods import POD_SECURITY_CONTEXT
from tests.support.records import sample_launch

LAUNCH = sample_launch("alice")
SECRETS = [LAUNCH.bot_token, LAUNCH.webhook_secret, LAUNCH.gateway_token, LAUNCH.hooks_token]
PS = m.PodSettings(namespace="otm-tenants", image="openclaw:test", s3_bucket="bucket-1")


def _config() -> dict:
    return m.render_tenant_config(
        LAUNCH, webhook_url="https://otm.example.com/tg/alice", api_root="http://telegram.test:8081"
    )


def test_rendered_config_listens_on_the_pod_network_with_auth() -> None:
    config = _config()
    telegram = config["channels"]["telegram"]
    assert telegram["webhookHost"] == "0.0.0.0"
    assert telegram["webhookPort"] == names.OPENCLAW_WEBHOOK_PORT
    assert telegram["webhookPath"] == "/telegram-webhook"
    assert telegram["webhookUrl"] == "https://otm.example.com/tg/alice"
    assert telegram["webhookSecret"] == LAUNCH.webhook_secret
    assert telegram["botToken"] == LAUNCH.bot_token
    assert telegram["apiRoot"] == "http://telegram.test:8081"
    assert config["gateway"] == {
        "mode": "local",
        "bind": "lan",
        "port": names.OPENCLAW_GATEWAY_PORT,
        "controlUi": {"enabled": False},
        "auth": {"mode": "token", "token": LAUNCH.gateway_token},
    }
    assert config["hooks"] == {"enabled": True, "token": LAUNCH.hooks_token, "path": "/hooks"}
    assert config["agents"]["defaults"]["workspace"] == "/home/node/.openclaw/workspace"


def test_tenant_secret_holds_config_and_tokens() -> None:
    text = m.config_json(_config())
    secret = m.tenant_secret(LAUNCH, text, namespace="otm-tenants")
    assert secret["metadata"] == {
        "name": names.tenant_secret_name("alice"),
        "namespace": "otm-tenants",
        "labels": {
            "app.kubernetes.io/name": "openclaw",
            "app.kubernetes.io/managed-by": "otm",
            "otm/tenant": "alice",
        },
        "annotations": {m.ANNOTATION_CONFIG_HASH: m.config_hash(text)},
    }
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {
        "openclaw.json": text,
        "bot-token": LAUNCH.bot_token,
        "gateway-token": LAUNCH.gateway_token,
        "hooks-token": LAUNCH.hooks_token,
        "webhook-secret": LAUNCH.webhook_secret,
    }
    assert json.loads(secret["stringData"]["openclaw.json"]) == _config()


def test_config_json_is_canonical() -> None:
    a = m.config_json({"b": 1, "a": {"d": 2, "c": 3}})
    b = m.config_json({"a": {"c": 3, "d": 2}, "b": 1})
    assert a == b and m.config_hash(a) == m.config_hash(b)


def test_tenant_pod_metadata_and_scheduling() -> None:
    pod = m.tenant_pod("alice", settings=PS, config_sha256="abc")
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"] == {
        "name": "alice",
        "namespace": "otm-tenants",
        "labels": {
            names.LABEL_APP: names.APP_OPENCLAW,
            names.LABEL_MANAGED_BY: names.MANAGED_BY,
            names.LABEL_TENANT: "alice",
        },
        # Karpenter never evicts a tenant's pod; the daemon's idle culling ends it.
        "annotations": {m.ANNOTATION_CONFIG_HASH: "abc", "karpenter.sh/do-not-disrupt": "true"},
    }
    spec = pod["spec"]
    assert {k: spec[k] for k in spec if k not in ("containers", "initContainers", "volumes")} == {
        "runtimeClassName": "kata-qemu",
        "priorityClassName": "otm-tenant",
        "serviceAccountName": "otm-tenant",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 330 + 120,  # drain, then the final sync
        "securityContext": POD_SECURITY_CONTEXT,
    }
    assert spec["volumes"] == [
        {"name": "home", "emptyDir": {}},
        {"name": "state", "emptyDir": {}},
        {"name": "workspace", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {
            "name": "config",
            "secret": {
                "secretName": "otm-tenant-alice",
                "items": [{"key": "openclaw.json", "path": "openclaw.json"}],
                "defaultMode": 0o440,
            },
        },
    ]


def test_tenant_pod_gateway_container() -> None:
    pod = m.tenant_pod("alice", settings=PS)
    (gateway,) = pod["spec"]["containers"]
    assert gateway["name"] == "gateway"
    assert gateway["image"] == "openclaw:test"
    assert gateway["ports"] == [
        {"name": "gateway", "containerPort": 18789, "protocol": "TCP"},
        {"name": "webhook", "containerPort": 8787, "protocol": "TCP"},
    ]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 18789}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 18789}
    assert gateway["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 18789}
    assert gateway["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert gateway["env"] == [
        {"name": "TENANT_ID", "value": "alice"},
        {"name": "HOME", "value": "/home/node"},
        {"name": "OPENCLAW_STATE_DIR", "value": "/home/node/.openclaw"},
        {"name": "OPENCLAW_CONFIG_PATH", "value": "/etc/openclaw/openclaw.json"},
        {"name": "OPENCLAW_CONFIG_READONLY", "value": "1"},
        {"name": "OPENCLAW_NO_AUTO_UPDATE", "value": "1"},
        {"name": "OPENCLAW_DISABLE_BONJOUR", "value": "1"},
        {
            "name": "OPENCLAW_GATEWAY_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "otm-tenant-alice", "key": "gateway-token"}},
        },
    ]
    assert gateway["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/node"},
        {"name": "state", "mountPath": "/home/node/.openclaw"},
        {"name": "workspace", "mountPath": "/home/node/.openclaw/workspace"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "config", "mountPath": "/etc/openclaw", "readOnly": True},
    ]
    assert gateway["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }


def test_tenant_pod_restore_then_native_sync_sidecar() -> None:
    pod = m.tenant_pod("alice", settings=PS)
    restore, sync = pod["spec"]["initContainers"]
    assert restore["name"] == "state-restore" and "restartPolicy" not in restore
    script = restore["command"][2]
    assert restore["command"][:2] == ["sh", "-c"]
    assert 'base="s3://${S3_BUCKET}/${S3_PREFIX}"' in script
    assert 'aws s3 sync "${base}state/" /state/' in script
    assert "--exclude openclaw.json --exclude 'openclaw.json.*' --exclude '*.lock'" in script
    assert script.startswith("set -eu")  # an S3 error fails the pod's start, never empty state
    env = {e["name"]: e["value"] for e in restore["env"]}
    assert env == {
        "S3_BUCKET": "bucket-1",
        "AWS_REGION": "us-east-1",
        "HOME": "/tmp",
        "TENANT_ID": "alice",
        "S3_PREFIX": "tenants/alice/",
    }
    assert sync["name"] == "state-sync"
    assert sync["restartPolicy"] == "Always"  # native sidecar: stopped after the gateway
    assert "sleep 60" in sync["command"][2]
    final = sync["lifecycle"]["preStop"]["exec"]["command"]
    assert final[:2] == ["sh", "-c"]
    assert 'aws s3 sync /state/ "${base}state/"' in final[2]
    assert "--exclude 'cache/*'" in final[2]
    assert {e["name"]: e["value"] for e in sync["env"]} == env
    for c in (restore, sync):
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_s3_endpoint_override_and_no_sync() -> None:
    pod = m.tenant_pod("alice", settings=m.PodSettings(s3_endpoint_url="http://127.0.0.1:9000"))
    env = pod["spec"]["initContainers"][0]["env"]
    assert {"name": "AWS_ENDPOINT_URL_S3", "value": "http://127.0.0.1:9000"} in env
    bare = m.tenant_pod("alice", settings=m.PodSettings(state_sync=False))
    assert "initContainers" not in bare["spec"]


def test_pod_settings_from_settings() -> None:
    settings = Settings(
        tenant_namespace="ns1",
        agent_image="img:1",
        s3_bucket="b",
        aws_region="eu-west-1",
        state_store="s3",
        agent_stop_grace_s=120.0,
    )
    ps = m.PodSettings.from_settings(settings)
    assert (ps.namespace, ps.image, ps.s3_bucket, ps.aws_region) == (
        "ns1",
        "img:1",
        "b",
        "eu-west-1",
    )
    assert ps.state_sync is True and ps.termination_grace_s == 120 + ps.final_sync_s
    assert m.PodSettings.from_settings(Settings()).state_sync is False


@pytest.mark.parametrize("kind", ["tenant", "warm"])
def test_no_secret_in_any_env_value_or_arg(kind: str) -> None:
    pod = m.tenant_pod("alice", settings=PS) if kind == "tenant" else m.warm_pod(settings=PS)
    flat = json.dumps(pod)
    for secret in SECRETS:
        assert secret not in flat
    values = m.env_values(pod)
    assert values, "the checker must see the env values"
    names_with_values = {
        e["name"]
        for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
        for e in c["env"]
        if "value" in e
    }
    assert not names_with_values & {
        "TELEGRAM_BOT_TOKEN",
        "OPENCLAW_GATEWAY_TOKEN",
        "OTM_BIND_TOKEN",
    }


def test_warm_pod() -> None:
    pod = m.warm_pod(settings=PS, config_sha256="abc")
    assert pod["metadata"] == {
        "generateName": "warm-",
        "namespace": "otm-tenants",
        "labels": {
            names.LABEL_APP: names.APP_OPENCLAW,
            names.LABEL_MANAGED_BY: names.MANAGED_BY,
            names.LABEL_WARM: "true",
        },
        # What a claim matches: the pod's image and the warm config it booted with.
        "annotations": {"otm/image": PS.image, "otm/config-sha256": "abc"},
    }
    assert m.warm_pod_image(m.warm_pod(settings=PS, image="other:1")) == "other:1"
    spec = pod["spec"]
    assert spec["priorityClassName"] == "otm-warm"
    assert spec["runtimeClassName"] == "kata-qemu"
    assert spec["serviceAccountName"] == "otm-tenant"
    assert spec["restartPolicy"] == "Never"
    (gateway,) = spec["containers"]
    assert gateway["command"][:2] == ["node", "-e"]
    env = {e["name"]: e for e in gateway["env"]}
    assert env["OTM_BIND_TOKEN"] == {
        "name": "OTM_BIND_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "otm-warm-bind", "key": "token"}},
    }
    assert env["OTM_BIND_PORT"]["value"] == "18790"
    assert json.loads(env["OTM_GATEWAY_COMMAND"]["value"]) == ["node", "openclaw.mjs", "gateway"]
    assert env["OPENCLAW_CONFIG_PATH"]["value"] == "/run/otm/openclaw.json"
    assert env["OTM_WARM_CONFIG"]["value"] == "/etc/openclaw-warm/openclaw.json"
    # Ready = bound and the tenant's webhook up (the bootstrap decides); liveness and startup
    # watch the pre-booted gateway itself, which serves /healthz through the bind.
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 18790}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 18789}
    assert gateway["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 18789}
    assert {p["containerPort"] for p in gateway["ports"]} == {18789, 8787, 18790}
    mounts = {v["name"]: v for v in gateway["volumeMounts"]}
    assert mounts["warm-config"]["readOnly"] is True
    (sync,) = spec["initContainers"]
    assert sync["restartPolicy"] == "Always"
    assert "tenant.env" in sync["command"][2]
    assert {"name": "TENANT_ID"} not in [{"name": e["name"]} for e in sync["env"]]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(volumes) == {"home", "state", "workspace", "tmp", "bind", "warm-config"}
    assert volumes["warm-config"]["secret"]["secretName"] == "otm-warm-config"
    assert m.is_warm(pod) and m.pod_tenant(pod) is None


def test_warm_and_bound_pod_configs() -> None:
    warm = m.render_warm_pod_config(
        PS, api_root="http://tg", gateway_token="replaced-at-boot", hooks_token="h" * 16
    )
    telegram = warm["channels"]["telegram"]
    assert telegram["enabled"] is False  # no Bot API traffic while warm (PS default)
    assert "botToken" not in telegram
    assert (telegram["webhookPort"], telegram["webhookPath"]) == (8787, "/telegram-webhook")
    assert warm["agents"]["entries"] == {"warm": {"workspace": m.WORKSPACE_DIR}}
    assert warm["gateway"]["port"] == 18789
    # The tuned keys are rendered for pods too.
    assert warm["gateway"]["controlUi"] == {"enabled": False}
    assert warm["plugins"]["allow"] == ["telegram"]
    bound = m.render_bound_pod_config(
        warm, LAUNCH, webhook_url="https://otm.example/tg/alice", api_root="http://tg"
    )
    assert bound["channels"]["telegram"]["botToken"] == LAUNCH.bot_token
    assert bound["channels"]["telegram"]["webhookSecret"] == LAUNCH.webhook_secret
    assert bound["agents"]["entries"] == {"main": {"workspace": m.WORKSPACE_DIR}}
    assert bound["gateway"] == warm["gateway"]  # a gateway change would restart it
    secret = m.warm_config_secret(m.config_json(warm), namespace="otm-tenants")
    assert secret["metadata"]["name"] == "otm-warm-config"
    assert secret["metadata"]["annotations"]["otm/config-sha256"] == m.config_hash(
        m.config_json(warm)
    )


def test_claim_patch_is_conditional_on_resource_version() -> None:
    pod = m.warm_pod(settings=PS)
    pod["metadata"].update(name="warm-abcde", resourceVersion="42")
    patch = m.claim_patch(pod, "alice", "2026-01-01T00:00:00Z")
    assert patch == {
        "metadata": {
            "resourceVersion": "42",
            "labels": {"otm/warm": None, "otm/tenant": "alice"},
            # Claimed: a tenant's pod now, which Karpenter must not evict.
            "annotations": {
                "otm/claimed-at": "2026-01-01T00:00:00Z",
                "karpenter.sh/do-not-disrupt": "true",
            },
        }
    }
    # Unclaimed, it has no tenant and may go.
    assert "karpenter.sh/do-not-disrupt" not in pod["metadata"]["annotations"]


def test_bind_request_carries_config_and_sync_env() -> None:
    body = m.bind_request("alice", _config(), sync_env={"AWS_SESSION_TOKEN": "t"})
    assert body == {
        "tenant_id": "alice",
        "config": _config(),
        "sync_env": {"S3_PREFIX": "tenants/alice/", "AWS_SESSION_TOKEN": "t"},
    }
    # A credential refresh: no config.
    assert "config" not in m.bind_request("alice", None, sync_env={"AWS_SESSION_TOKEN": "u"})


def test_selectors_match_labels() -> None:
    assert m.OPENCLAW_SELECTOR == "app.kubernetes.io/name=openclaw"
    assert m.selector_for("alice") == "app.kubernetes.io/name=openclaw,otm/tenant=alice"
    assert m.WARM_SELECTOR == "app.kubernetes.io/name=openclaw,otm/warm=true"
    assert m.pod_tenant(m.tenant_pod("bob", settings=PS)) == "bob"


def test_a_baked_compile_cache_is_copied_into_tmp_before_the_gateway() -> None:
    ps = dataclasses.replace(PS, compile_cache_dir="/opt/otm/tmp/node-compile-cache")
    tenant = m.tenant_pod("alice", settings=ps)
    (gateway,) = tenant["spec"]["containers"]
    assert gateway["command"][:2] == ["sh", "-c"]
    assert 'cp -R "$OTM_COMPILE_CACHE" /tmp/' in gateway["command"][2]
    assert gateway["command"][4:] == list(ps.gateway_command)
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["OTM_COMPILE_CACHE"] == "/opt/otm/tmp/node-compile-cache"
    (warm,) = m.warm_pod(settings=ps)["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in warm["env"]}["OTM_COMPILE_CACHE"] == (
        "/opt/otm/tmp/node-compile-cache"
    )
    # Without a baked cache the command is the image's own.
    (plain,) = m.tenant_pod("alice", settings=PS)["spec"]["containers"]
    assert plain["command"] == list(PS.gateway_command)


def test_the_grace_period_leaves_the_final_sync_its_budget_after_the_drain() -> None:
    """OpenClaw drains for up to 330 s before it exits; the sync sidecar's preStop starts
    only then, so the pod's grace period (and a stop's deletion grace) must go beyond it."""
    drain = Settings(state_store="s3").agent_stop_grace_s
    ps = m.PodSettings.from_settings(Settings(state_store="s3"))
    grace = m.tenant_pod("alice", settings=ps)["spec"]["terminationGracePeriodSeconds"]
    assert grace - drain >= m.FINAL_SYNC_WAIT_S + 30
    assert m.warm_pod(settings=ps)["spec"]["terminationGracePeriodSeconds"] == grace
    assert ps.deletion_grace_s(drain) == grace
    assert m.PodSettings.from_settings(Settings()).deletion_grace_s(drain) == drain  # no sync
