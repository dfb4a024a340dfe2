"""Kubernetes objects for tenant agents, as plain dicts (pure functions, no API model classes).

Cold tenant pod (``tenant_pod``): an init container restores the tenant's files from S3, the
OpenClaw gateway reads its rendered ``openclaw.json`` from the tenant's Secret, and a native
sidecar (an init container with ``restartPolicy: Always``) syncs the state dir to S3 every
60 s. Kubernetes stops native sidecars only after the main containers have exited, so the
sidecar's preStop sync runs after the gateway has drained its turns and closed its SQLite
files: the final sync is consistent, unlike a sync that races a still-running gateway.

Warm pod (``warm_pod``): see daemon/kube/warm_bootstrap.py for what is pre-warmed and how a tenant
is bound at claim time.

Secrets never appear as plain values in a pod spec: the gateway token comes from a
``secretKeyRef`` and the bot token only inside the mounted ``openclaw.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.agent.openclaw_config import (
    GatewayTuning,
    Listeners,
    ModelProvider,
    WarmTelegram,
    render_bound_config,
    render_openclaw_config,
    render_warm_config,
    tuning_from_settings,
)
from daemon.kube import names
from daemon.kube.pod_scripts import (
    BIND_DIR,
    FINAL_SYNC_WAIT_S,
    HELPER_STATE,
    HELPER_WORKSPACE,
    RESTORED_MARKER,
    final_sync_command,
    restore_script,
    sync_loop_script,
    sync_script,
)
from daemon.kube.warm_bootstrap import BOOTSTRAP_JS
from daemon.ports import AgentLaunch
from daemon.settings import Settings

JSON = dict[str, Any]

# Paths inside the pod. The official image runs as `node` (uid 1000) with its state in
# /home/node/.openclaw; helper containers see the same volumes at /state and /workspace.
RUN_AS_USER = 1000
HOME_DIR = "/home/node"
STATE_DIR = f"{HOME_DIR}/.openclaw"
WORKSPACE_DIR = f"{STATE_DIR}/workspace"
CONFIG_DIR = "/etc/openclaw"
CONFIG_KEY = "openclaw.json"
WEBHOOK_PATH = "/telegram-webhook"

# Keys of the per-tenant Secret.
SECRET_BOT_TOKEN = "bot-token"
SECRET_GATEWAY_TOKEN = "gateway-token"
SECRET_HOOKS_TOKEN = "hooks-token"
SECRET_WEBHOOK_SECRET = "webhook-secret"
# Shared Secret holding the token warm pods accept bind requests with.
WARM_BIND_SECRET = "otm-warm-bind"
WARM_BIND_KEY = "token"
# Shared Secret holding the warm gateways' openclaw.json (no tenant data; the model key).
WARM_CONFIG_SECRET = "otm-warm-config"
WARM_CONFIG_DIR = "/etc/openclaw-warm"
WARM_NAME_PREFIX = names.WARM_POD_PREFIX

ANNOTATION_CONFIG_HASH = "otm/config-sha256"
ANNOTATION_CLAIMED_AT = "otm/claimed-at"
ANNOTATION_IMAGE = "otm/image"
"""On warm pods: the image they run, so a claim never takes another image's gateway."""

ANNOTATION_DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
TENANT_POD_ANNOTATIONS: Mapping[str, str] = {ANNOTATION_DO_NOT_DISRUPT: "true"}
"""On every pod serving a tenant (cold, or warm once claimed): Karpenter never evicts it
for consolidation or drift, so a turn is never cut off mid-way; the daemon's idle culling
decides when it ends, and the NodePool's terminationGracePeriod bounds how long an
expiring node waits. An unclaimed warm pod has no tenant and may be disrupted."""

OPENCLAW_SELECTOR = f"{names.LABEL_APP}={names.APP_OPENCLAW}"
WARM_SELECTOR = f"{OPENCLAW_SELECTOR},{names.LABEL_WARM}=true"


@dataclass(frozen=True)
class PodSettings:
    """What tenant and warm pods are built from (the deployment's choices, not per tenant)."""

    namespace: str = names.TENANT_NAMESPACE
    image: str = "ghcr.io/openclaw/openclaw:2026.9.6"
    gateway_command: tuple[str, ...] = ("node", "openclaw.mjs", "gateway")
    """Image-specific: the official image's WORKDIR holds openclaw.mjs."""
    sync_image: str = "public.ecr.aws/aws-cli/aws-cli:2.15.30"
    s3_bucket: str = "otm-tenant-state"
    aws_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    state_sync: bool = True
    """False: no restore/sync containers (clusters without S3, tests)."""
    warm_telegram: WarmTelegram = "disabled"
    """A warm gateway's Telegram before the bind: ``disabled`` (no Bot API traffic; the
    real Bot API would refuse a placeholder token) or ``placeholder`` (a fake/relay API)."""
    tuning: GatewayTuning = field(default_factory=GatewayTuning)
    compile_cache_dir: str | None = None
    """A Node compile cache baked into the agent image (deploy/agent-image), copied into
    the pod's fresh /tmp before the gateway starts: about 3.5 CPU-s less per boot."""
    sync_interval_s: int = 60
    drain_grace_s: int = 330
    """OpenClaw drains turns for up to 315 s, plus reserve and exit margin."""
    final_sync_s: int = 120
    """Kept on top of the drain for the sync sidecar's final sync, which starts only once
    the gateway exited (native sidecars stop after the main containers): it may first
    wait out a periodic sync in progress (pod_scripts.FINAL_SYNC_WAIT_S), then uploads."""
    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "250m", "memory": "1Gi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"cpu": "2", "memory": "2Gi"})
    helper_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "50m", "memory": "128Mi"}
    )
    helper_limits: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "256Mi"}
    )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PodSettings:
        values: dict[str, Any] = {
            "namespace": settings.tenant_namespace,
            "image": settings.agent_image,
            "s3_bucket": settings.s3_bucket,
            "aws_region": settings.aws_region,
            "s3_endpoint_url": settings.s3_endpoint_url,
            "state_sync": settings.state_store == "s3",
            "drain_grace_s": round(settings.agent_stop_grace_s),
            "tuning": tuning_from_settings(settings),
            "compile_cache_dir": settings.agent_compile_cache_dir,
        }
        values.update(overrides)
        return cls(**values)

    def deletion_grace_s(self, drain_s: float) -> int:
        """A pod's grace period when its gateway may drain ``drain_s``: the drain, then
        (with state sync) the final sync's own budget after it."""
        return max(0, round(drain_s)) + (self.final_sync_s if self.state_sync else 0)

    @property
    def termination_grace_s(self) -> int:
        return self.deletion_grace_s(self.drain_grace_s)


def tenant_labels(tenant_id: str) -> dict[str, str]:
    return {
        names.LABEL_APP: names.APP_OPENCLAW,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_TENANT: tenant_id,
    }


def warm_labels() -> dict[str, str]:
    return {
        names.LABEL_APP: names.APP_OPENCLAW,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_WARM: "true",
    }


def tenant_s3_prefix(tenant_id: str) -> str:
    """The tenant's key prefix, with the trailing slash (so `alice` never lists `alice2`).
    Same layout as the S3 StateStore adapter."""
    return f"tenants/{tenant_id}/"


# -- openclaw.json and the Secret --------------------------------------------------------


# Where a pod's gateway listens: the webhook on all interfaces of the pod, the gateway on the
# pod network (token auth; the NetworkPolicy admits only the daemon).
_POD_LISTENERS: Listeners = {
    "webhook_host": "0.0.0.0",
    "webhook_port": names.OPENCLAW_WEBHOOK_PORT,
    "webhook_path": WEBHOOK_PATH,
    "gateway_port": names.OPENCLAW_GATEWAY_PORT,
    "gateway_bind": "lan",
}


def render_tenant_config(
    launch: AgentLaunch,
    *,
    webhook_url: str,
    api_root: str | None,
    model_provider: ModelProvider | None = None,
    tuning: GatewayTuning | None = None,
) -> JSON:
    """The tenant's openclaw.json for a pod: webhook listener on all interfaces of the pod,
    gateway on the pod network with token auth (the NetworkPolicy admits only the daemon)."""
    return render_openclaw_config(
        tenant_id=launch.tenant_id,
        bot_token=launch.bot_token,
        webhook_url=webhook_url,
        webhook_secret=launch.webhook_secret,
        api_root=api_root,
        **_POD_LISTENERS,
        gateway_token=launch.gateway_token,
        hooks_token=launch.hooks_token,
        workspace_dir=WORKSPACE_DIR,
        model_provider=model_provider,
        tuning=tuning,
    )


def render_warm_pod_config(
    ps: PodSettings,
    *,
    api_root: str | None,
    model_provider: ModelProvider | None = None,
    gateway_token: str,
    hooks_token: str,
) -> JSON:
    """The warm gateways' openclaw.json (the ``otm-warm-config`` Secret). The bootstrap
    replaces the gateway token and webhook secret with random per-pod values at boot."""
    return render_warm_config(
        warm_secret=gateway_token,
        workspace_dir=WORKSPACE_DIR,
        listeners=_POD_LISTENERS,
        api_root=api_root,
        gateway_token=gateway_token,
        hooks_token=hooks_token,
        model_provider=model_provider,
        tuning=ps.tuning,
        telegram=ps.warm_telegram,
    )


def render_bound_pod_config(
    warm: Mapping[str, Any],
    launch: AgentLaunch,
    *,
    webhook_url: str,
    api_root: str | None,
    model_provider: ModelProvider | None = None,
) -> JSON:
    """The warm config rewritten for the tenant (the bind's ``config``); ``model_provider``
    is the model gateway with the tenant's own key."""
    return render_bound_config(
        warm,
        tenant_id=launch.tenant_id,
        bot_token=launch.bot_token,
        webhook_url=webhook_url,
        webhook_secret=launch.webhook_secret,
        workspace_dir=WORKSPACE_DIR,
        api_root=api_root,
        model_provider=model_provider,
    )


def _opaque_secret(
    name: str,
    *,
    namespace: str,
    labels: Mapping[str, str],
    string_data: Mapping[str, str],
    config_text: str | None = None,
) -> JSON:
    """An Opaque Secret; with ``config_text``, it holds that rendered openclaw.json under
    CONFIG_KEY and is annotated with its hash."""
    metadata: JSON = {"name": name, "namespace": namespace, "labels": dict(labels)}
    data = dict(string_data)
    if config_text is not None:
        metadata["annotations"] = {ANNOTATION_CONFIG_HASH: config_hash(config_text)}
        data = {CONFIG_KEY: config_text, **data}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": data,
    }


def warm_config_secret(config_text: str, *, namespace: str) -> JSON:
    return _opaque_secret(
        WARM_CONFIG_SECRET,
        namespace=namespace,
        labels={names.LABEL_MANAGED_BY: names.MANAGED_BY},
        string_data={},
        config_text=config_text,
    )


def config_json(config: Mapping[str, Any]) -> str:
    """Canonical serialisation: equal configs give equal bytes (and equal hashes)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_hash(config_text: str) -> str:
    return hashlib.sha256(config_text.encode()).hexdigest()


def tenant_secret(launch: AgentLaunch, config_text: str, *, namespace: str) -> JSON:
    """Per-tenant Secret: the rendered openclaw.json plus the tokens it was rendered from."""
    return _opaque_secret(
        names.tenant_secret_name(launch.tenant_id),
        namespace=namespace,
        labels=tenant_labels(launch.tenant_id),
        string_data={
            SECRET_BOT_TOKEN: launch.bot_token,
            SECRET_GATEWAY_TOKEN: launch.gateway_token,
            SECRET_HOOKS_TOKEN: launch.hooks_token,
            SECRET_WEBHOOK_SECRET: launch.webhook_secret,
        },
        config_text=config_text,
    )


def owned_by_pod(pod: Mapping[str, Any]) -> JSON:
    """A merge patch making an object a dependent of ``pod`` (that incarnation, by uid):
    the garbage collector deletes it once the pod is gone, so a tenant Secret never
    outlives its pod when the daemon dies before its own cleanup."""
    meta = pod["metadata"]
    owner = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
    return {"metadata": {"ownerReferences": [owner]}}


def warm_bind_secret(token: str, *, namespace: str) -> JSON:
    return _opaque_secret(
        WARM_BIND_SECRET,
        namespace=namespace,
        labels={names.LABEL_MANAGED_BY: names.MANAGED_BY},
        string_data={WARM_BIND_KEY: token},
    )


# -- pod building blocks ---------------------------------------------------------------


def _pod_security_context() -> JSON:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> JSON:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _helper_env(tenant_id: str | None, ps: PodSettings) -> list[JSON]:
    env: list[JSON] = [
        {"name": "S3_BUCKET", "value": ps.s3_bucket},
        {"name": "AWS_REGION", "value": ps.aws_region},
        {"name": "HOME", "value": "/tmp"},
    ]
    if tenant_id is not None:
        env += [
            {"name": "TENANT_ID", "value": tenant_id},
            {"name": "S3_PREFIX", "value": tenant_s3_prefix(tenant_id)},
        ]
    if ps.s3_endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL_S3", "value": ps.s3_endpoint_url})
    return env


def _helper_mounts(*, bind: bool = False) -> list[JSON]:
    mounts: list[JSON] = [
        {"name": "state", "mountPath": HELPER_STATE},
        {"name": "workspace", "mountPath": HELPER_WORKSPACE},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if bind:
        mounts.append({"name": "bind", "mountPath": BIND_DIR})
    return mounts


def _helper_resources(ps: PodSettings) -> JSON:
    return {"requests": dict(ps.helper_requests), "limits": dict(ps.helper_limits)}


def restore_container(tenant_id: str, ps: PodSettings) -> JSON:
    return {
        "name": "state-restore",
        "image": ps.sync_image,
        "command": ["sh", "-c", restore_script()],
        "env": _helper_env(tenant_id, ps),
        "volumeMounts": _helper_mounts(),
        "resources": _helper_resources(ps),
        "securityContext": container_security_context(),
    }


def sync_sidecar(tenant_id: str | None, ps: PodSettings) -> JSON:
    """Native sidecar (listed under initContainers with restartPolicy Always)."""
    warm = tenant_id is None
    return {
        "name": "state-sync",
        "image": ps.sync_image,
        "restartPolicy": "Always",
        "command": ["sh", "-c", sync_loop_script(ps.sync_interval_s, wait_for_bind=warm)],
        "env": _helper_env(tenant_id, ps),
        "lifecycle": {"preStop": {"exec": {"command": final_sync_command(warm=warm)}}},
        "volumeMounts": _helper_mounts(bind=warm),
        "resources": _helper_resources(ps),
        "securityContext": container_security_context(),
    }


def _probes() -> JSON:
    port = names.OPENCLAW_GATEWAY_PORT
    return {
        # Boot takes ~6 s on 2 vCPU; allow two minutes before liveness may restart it.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        # Readiness includes the Telegram channel; 1 s so a wake sees Ready promptly.
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
    }


def _warm_probes() -> JSON:
    """Startup and liveness on the pre-booted gateway's own /healthz (it serves through the
    bind: no liveness gap); readiness on the bootstrap, which is Ready only once the tenant
    is bound, restored and its webhook accepts the tenant's secret."""
    probes = _probes()
    probes["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": names.WARM_BIND_PORT},
        "periodSeconds": 1,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    return probes


def _gateway_ports() -> list[JSON]:
    return [
        {"name": "gateway", "containerPort": names.OPENCLAW_GATEWAY_PORT, "protocol": "TCP"},
        {"name": "webhook", "containerPort": names.OPENCLAW_WEBHOOK_PORT, "protocol": "TCP"},
    ]


def _openclaw_env(config_path: str) -> list[JSON]:
    return [
        {"name": "HOME", "value": HOME_DIR},
        {"name": "OPENCLAW_STATE_DIR", "value": STATE_DIR},
        {"name": "OPENCLAW_CONFIG_PATH", "value": config_path},
        # The config is rendered by otm; the gateway must not rewrite it.
        {"name": "OPENCLAW_CONFIG_READONLY", "value": "1"},
        {"name": "OPENCLAW_NO_AUTO_UPDATE", "value": "1"},
        {"name": "OPENCLAW_DISABLE_BONJOUR", "value": "1"},
    ]


def _gateway_mounts() -> list[JSON]:
    return [
        {"name": "home", "mountPath": HOME_DIR},
        {"name": "state", "mountPath": STATE_DIR},
        {"name": "workspace", "mountPath": WORKSPACE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def _compile_cache_env(ps: PodSettings) -> list[JSON]:
    if not ps.compile_cache_dir:
        return []
    return [{"name": "OTM_COMPILE_CACHE", "value": ps.compile_cache_dir}]


def _with_compile_cache(command: list[str], ps: PodSettings) -> list[str]:
    """Copy the image's baked compile cache into /tmp (an empty volume), then exec the
    gateway. A missing cache is not an error: the gateway compiles as without one."""
    if not ps.compile_cache_dir:
        return command
    copy = 'cp -R "$OTM_COMPILE_CACHE" /tmp/ 2>/dev/null || true; exec "$@"'
    return ["sh", "-c", copy, "sh", *command]


def _empty_dirs(*volume_names: str) -> list[JSON]:
    return [{"name": name, "emptyDir": {}} for name in volume_names]


def _secret_env(name: str, secret: str, key: str) -> JSON:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _config_volume(name: str, secret_name: str) -> JSON:
    """A volume holding ``openclaw.json`` from ``secret_name``, readable by the pod's group."""
    return {
        "name": name,
        "secret": {
            "secretName": secret_name,
            "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
            "defaultMode": 0o440,
        },
    }


def _pod_spec(
    *,
    priority_class: str,
    containers: list[JSON],
    init_containers: list[JSON],
    volumes: list[JSON],
    ps: PodSettings,
    restart_policy: str,
) -> JSON:
    spec: JSON = {
        "runtimeClassName": names.RUNTIME_CLASS,
        "priorityClassName": priority_class,
        "serviceAccountName": names.TENANT_SERVICE_ACCOUNT,
        # No Kubernetes API access from tenant code (EKS Pod Identity injects its own token).
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": ps.termination_grace_s,
        "securityContext": _pod_security_context(),
        "containers": containers,
        "volumes": volumes,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    return spec


def tenant_pod(
    tenant_id: str,
    *,
    settings: PodSettings,
    image: str | None = None,
    config_sha256: str | None = None,
) -> JSON:
    """A tenant's (cold-started) pod ``openclaw-{id}``."""
    ps = settings
    secret = names.tenant_secret_name(tenant_id)
    gateway: JSON = {
        "name": "gateway",
        "image": image or ps.image,
        "command": _with_compile_cache(list(ps.gateway_command), ps),
        "env": [
            {"name": "TENANT_ID", "value": tenant_id},
            *_openclaw_env(f"{CONFIG_DIR}/{CONFIG_KEY}"),
            *_compile_cache_env(ps),
            _secret_env("OPENCLAW_GATEWAY_TOKEN", secret, SECRET_GATEWAY_TOKEN),
        ],
        "ports": _gateway_ports(),
        **_probes(),
        "resources": {"requests": dict(ps.requests), "limits": dict(ps.limits)},
        "securityContext": container_security_context(),
        "volumeMounts": [
            *_gateway_mounts(),
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    init = [restore_container(tenant_id, ps), sync_sidecar(tenant_id, ps)] if ps.state_sync else []
    metadata: JSON = {
        "name": names.tenant_pod_name(tenant_id),
        "namespace": ps.namespace,
        "labels": tenant_labels(tenant_id),
        "annotations": dict(TENANT_POD_ANNOTATIONS),
    }
    if config_sha256:
        metadata["annotations"][ANNOTATION_CONFIG_HASH] = config_sha256
    config_volume = _config_volume("config", secret)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": _pod_spec(
            priority_class=names.TENANT_PRIORITY_CLASS,
            containers=[gateway],
            init_containers=init,
            volumes=[*_empty_dirs("home", "state", "workspace", "tmp"), config_volume],
            ps=ps,
            restart_policy="Always",
        ),
    }


def warm_pod(*, settings: PodSettings, image: str | None = None, config_sha256: str = "") -> JSON:
    """An unclaimed warm-pool pod: its gateway pre-booted on the warm config, the bootstrap
    waiting for a bind (daemon/kube/warm_bootstrap.py).

    restartPolicy Never: a bootstrap or gateway that exits leaves the pod Failed, which the
    runtime reports (a restarted bootstrap would come back unbound under a tenant's label).
    """
    ps = settings
    image = image or ps.image
    gateway: JSON = {
        "name": "gateway",
        "image": image,
        "command": ["node", "-e", BOOTSTRAP_JS],
        "env": [
            *_openclaw_env(f"{BIND_DIR}/{CONFIG_KEY}"),
            {"name": "OTM_BIND_DIR", "value": BIND_DIR},
            {"name": "OTM_BIND_PORT", "value": str(names.WARM_BIND_PORT)},
            {"name": "OTM_WARM_CONFIG", "value": f"{WARM_CONFIG_DIR}/{CONFIG_KEY}"},
            {"name": "OTM_GATEWAY_COMMAND", "value": json.dumps(list(ps.gateway_command))},
            {"name": "OTM_WAIT_RESTORE", "value": "1" if ps.state_sync else "0"},
            *_compile_cache_env(ps),
            # The namespace's bind key; the bootstrap derives this pod's own token from
            # it and its name, then drops the key (daemon/kube/warm_bind_token.py).
            _secret_env("OTM_BIND_TOKEN", WARM_BIND_SECRET, WARM_BIND_KEY),
            {"name": "OTM_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            *_gateway_ports(),
            {"name": "bind", "containerPort": names.WARM_BIND_PORT, "protocol": "TCP"},
        ],
        **_warm_probes(),
        "resources": {"requests": dict(ps.requests), "limits": dict(ps.limits)},
        "securityContext": container_security_context(),
        "volumeMounts": [
            *_gateway_mounts(),
            {"name": "bind", "mountPath": BIND_DIR},
            {"name": "warm-config", "mountPath": WARM_CONFIG_DIR, "readOnly": True},
        ],
    }
    init = [sync_sidecar(None, ps)] if ps.state_sync else []
    warm_config = _config_volume("warm-config", WARM_CONFIG_SECRET)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": WARM_NAME_PREFIX,
            "namespace": ps.namespace,
            "labels": warm_labels(),
            "annotations": {ANNOTATION_IMAGE: image, ANNOTATION_CONFIG_HASH: config_sha256},
        },
        "spec": _pod_spec(
            priority_class=names.WARM_PRIORITY_CLASS,
            containers=[gateway],
            init_containers=init,
            volumes=[*_empty_dirs("home", "state", "workspace", "tmp", "bind"), warm_config],
            ps=ps,
            restart_policy="Never",
        ),
    }


def warm_pod_image(pod: Mapping[str, Any]) -> str | None:
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(ANNOTATION_IMAGE)


def warm_pod_config_hash(pod: Mapping[str, Any]) -> str | None:
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(ANNOTATION_CONFIG_HASH)


def claim_patch(pod: Mapping[str, Any], tenant_id: str, claimed_at: str) -> JSON:
    """Merge patch relabelling a warm pod for a tenant. Carries the pod's resourceVersion,
    so the API server rejects it (409) if anyone changed the pod since we read it: two
    replicas racing for the same warm pod cannot both win."""
    return {
        "metadata": {
            "resourceVersion": pod["metadata"]["resourceVersion"],
            "labels": {names.LABEL_WARM: None, names.LABEL_TENANT: tenant_id},
            "annotations": {ANNOTATION_CLAIMED_AT: claimed_at, **TENANT_POD_ANNOTATIONS},
        }
    }


def bind_request(
    tenant_id: str,
    config: Mapping[str, Any] | None,
    *,
    sync_env: Mapping[str, str] | None = None,
) -> JSON:
    """Body of the bind POST to a claimed warm pod's bootstrap (sent over the pod network,
    never stored in the API server). ``config`` None: a credential refresh. ``sync_env``
    carries the tenant-scoped S3 credentials for the sync sidecar."""
    body: JSON = {
        "tenant_id": tenant_id,
        "sync_env": {"S3_PREFIX": tenant_s3_prefix(tenant_id), **(sync_env or {})},
    }
    if config is not None:
        body["config"] = dict(config)
    return body


def env_values(pod: Mapping[str, Any]) -> list[str]:
    """Every literal env value and arg of every container (for secret-leak checks)."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        out += [str(e["value"]) for e in container.get("env", []) if "value" in e]
        out += [str(a) for a in container.get("command", []) + container.get("args", [])]
    return out


def pod_tenant(pod: Mapping[str, Any]) -> str | None:
    labels: Mapping[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_TENANT)


def is_warm(pod: Mapping[str, Any]) -> bool:
    labels: Mapping[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_WARM) == "true" and names.LABEL_TENANT not in labels


def selector_for(tenant_id: str) -> str:
    return f"{OPENCLAW_SELECTOR},{names.LABEL_TENANT}={tenant_id}"


__all__: Sequence[str] = [
    "BIND_DIR",
    "FINAL_SYNC_WAIT_S",
    "HELPER_STATE",
    "HELPER_WORKSPACE",
    "RESTORED_MARKER",
    "PodSettings",
    "bind_request",
    "claim_patch",
    "final_sync_command",
    "owned_by_pod",
    "render_tenant_config",
    "restore_script",
    "sync_loop_script",
    "sync_script",
    "tenant_pod",
    "tenant_secret",
    "warm_bind_secret",
    "warm_pod",
]
