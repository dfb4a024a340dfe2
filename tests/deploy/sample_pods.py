"""Hand-written pods shaped like the ones the daemon generates (DESIGN.md, "Pod
(production)"), built from daemon/kube/names.py. They are a stable subject for the tests
that break a pod on purpose; test_daemon_manifests.py checks the daemon's real pod
builder (daemon/kube/manifests.py)."""

from __future__ import annotations

import copy
from typing import Any

from daemon.kube import names

Doc = dict[str, Any]

OPENCLAW_IMAGE = "ghcr.io/otm-project/openclaw:2026.9.6"
SYNC_IMAGE = "ghcr.io/otm-project/otm:0.1.0"
BUCKET = "otm-tenant-state-111122223333"
POD_SECURITY_CONTEXT: Doc = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""What the restricted Pod Security Standard asks of a tenant pod (uid/gid 1000: the image's
``node`` user); the daemon's pod builder is held to it too (tests/k8s_runtime)."""


def _state_prefix(tenant_id: str) -> str:
    # The pod is named after the tenant, so the Pod Identity session tag scopes this
    # prefix (deploy/iam/README.md).
    return f"s3://{BUCKET}/tenants/{tenant_id}/"


def tenant_pod(tenant_id: str = "alice") -> Doc:
    secret = names.tenant_secret_name(tenant_id)
    common_env = [
        {"name": "AWS_REGION", "value": "us-east-1"},
        {"name": "OTM_STATE_PREFIX", "value": _state_prefix(tenant_id)},
    ]
    state_mount = {"name": "state", "mountPath": "/home/node/.openclaw"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.tenant_pod_name(tenant_id),
            "namespace": names.TENANT_NAMESPACE,
            "labels": {
                names.LABEL_APP: names.APP_OPENCLAW,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
                names.LABEL_TENANT: tenant_id,
            },
        },
        "spec": {
            "runtimeClassName": names.RUNTIME_CLASS,
            "priorityClassName": names.TENANT_PRIORITY_CLASS,
            "serviceAccountName": names.TENANT_SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "restartPolicy": "Always",
            # OpenClaw drains in-flight turns for up to 315 s + margins on SIGTERM.
            "terminationGracePeriodSeconds": 330,
            "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),  # tests break pods in place
            "initContainers": [
                {
                    "name": "restore",
                    "image": SYNC_IMAGE,
                    "command": ["otm", "state", "restore"],
                    "args": ["--exclude", "openclaw.json", "--exclude", "*.lock"],
                    "env": common_env,
                    "volumeMounts": [state_mount],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                }
            ],
            "containers": [
                {
                    "name": "openclaw",
                    "image": OPENCLAW_IMAGE,
                    "command": ["openclaw", "gateway"],
                    "ports": [
                        {"name": "webhook", "containerPort": names.OPENCLAW_WEBHOOK_PORT},
                        {"name": "gateway", "containerPort": names.OPENCLAW_GATEWAY_PORT},
                    ],
                    "env": [
                        {"name": "OPENCLAW_STATE_DIR", "value": "/home/node/.openclaw"},
                        {"name": "OPENCLAW_CONFIG_PATH", "value": "/etc/openclaw/openclaw.json"},
                        {"name": "OPENCLAW_CONFIG_READONLY", "value": "1"},
                        {
                            "name": "TELEGRAM_BOT_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": secret, "key": "bot-token"}},
                        },
                        {
                            "name": "OPENCLAW_GATEWAY_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": secret, "key": "gateway-token"}},
                        },
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": names.OPENCLAW_GATEWAY_PORT},
                        "periodSeconds": 2,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": names.OPENCLAW_GATEWAY_PORT},
                        "periodSeconds": 10,
                        "failureThreshold": 6,
                    },
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "1Gi"},
                        "limits": {"memory": "2Gi"},
                    },
                    "volumeMounts": [
                        state_mount,
                        {"name": "config", "mountPath": "/etc/openclaw", "readOnly": True},
                    ],
                },
                {
                    "name": "sync",
                    "image": SYNC_IMAGE,
                    "command": ["otm", "state", "sync", "--every", "60s"],
                    "env": common_env,
                    "lifecycle": {
                        "preStop": {"exec": {"command": ["otm", "state", "sync", "--final"]}}
                    },
                    "volumeMounts": [state_mount],
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                },
            ],
            "volumes": [
                {"name": "state", "emptyDir": {"sizeLimit": "5Gi"}},
                {
                    "name": "config",
                    "secret": {
                        "secretName": secret,
                        "items": [{"key": "openclaw.json", "path": "openclaw.json"}],
                    },
                },
            ],
        },
    }


def warm_pod(suffix: str = "x7k2p") -> Doc:
    """An unclaimed warm-pool pod: same shape, no tenant, no tenant Secret yet."""
    pod = tenant_pod("unused")
    pod["metadata"]["name"] = f"{names.WARM_POD_PREFIX}{suffix}"
    labels = pod["metadata"]["labels"]
    del labels[names.LABEL_TENANT]
    labels[names.LABEL_WARM] = "true"
    spec = pod["spec"]
    spec["priorityClassName"] = names.WARM_PRIORITY_CLASS
    spec["initContainers"] = []
    spec["containers"] = [c for c in spec["containers"] if c["name"] == "openclaw"]
    openclaw = spec["containers"][0]
    openclaw["env"] = [e for e in openclaw["env"] if "valueFrom" not in e]
    openclaw["volumeMounts"] = [m for m in openclaw["volumeMounts"] if m["name"] == "state"]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] == "state"]
    return pod
