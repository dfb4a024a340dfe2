"""Names shared by the daemon's generated manifests and the deploy/kustomize tree.

Both sides import or test against these constants, so a rename here is caught
by the cross-reference tests in tests/deploy/.
"""

from __future__ import annotations

# Namespaces
DAEMON_NAMESPACE = "otm-system"
TENANT_NAMESPACE = "otm-tenants"

# Scheduling
RUNTIME_CLASS = "kata-qemu"
TENANT_PRIORITY_CLASS = "otm-tenant"
WARM_PRIORITY_CLASS = "otm-warm"

# Identities
DAEMON_SERVICE_ACCOUNT = "otm-daemon"
TENANT_SERVICE_ACCOUNT = "otm-tenant"

# Labels
LABEL_APP = "app.kubernetes.io/name"
APP_OPENCLAW = "openclaw"
APP_DAEMON = "otm-daemon"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "otm"
LABEL_TENANT = "otm/tenant"
LABEL_WARM = "otm/warm"  # "true" on unclaimed warm-pool pods

# Ports
OPENCLAW_GATEWAY_PORT = 18789
OPENCLAW_WEBHOOK_PORT = 8787
WARM_BIND_PORT = 18790  # a warm pod's bootstrap: bind, credential refresh, tenant readiness
DAEMON_ROUTER_PORT = 8080
DAEMON_ADMIN_PORT = 8081
DAEMON_MODEL_GATEWAY_PORT = 8082
MODEL_GATEWAY_SERVICE = "otm-model-gateway"
REDIS_PORT = 6379

# Objects in the daemon namespace
DAEMON_CONFIGMAP = "otm-daemon-config"
REDIS_SERVICE = "otm-redis"
LEADER_LEASE = "otm-leader"


def tenant_secret_name(tenant_id: str) -> str:
    """Per-tenant Secret holding the bot token and the rendered openclaw.json."""
    return f"otm-tenant-{tenant_id}"


# Warm-pool pods are named with this prefix (generateName); tenant ids may not use it.
WARM_POD_PREFIX = "warm-"


def tenant_pod_name(tenant_id: str) -> str:
    """The tenant id itself: EKS Pod Identity tags a pod's AWS session with its
    name, and IAM cannot strip a prefix, so the S3 ABAC policy can only scope
    ``tenants/{id}/`` if the pod is named exactly ``{id}`` (deploy/iam/README.md)."""
    return tenant_id
