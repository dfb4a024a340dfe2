"""One settings object for the whole daemon, built once and passed down explicitly.

Precedence: command-line flags > environment (``OTM_*``) > YAML file > defaults.
Only flags the user actually typed are passed in as ``flags``, so a default
flag value never shadows the environment or the file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import yaml

from daemon.model import IngressKind
from daemon.model_pricing import parse_prices
from daemon.rollout import parse_image_commands

RegistryKind = Literal["sqlite", "dynamodb"]
StateStoreKind = Literal["dir", "s3"]
RuntimeKind = Literal["local", "kubernetes"]


class SettingsError(ValueError):
    """A setting has a value the daemon cannot run with."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path.home() / ".otm")
    """Where the embedded default keeps its SQLite registry, state directory,
    Redis data and the generated admin token. Production keeps nothing here."""

    router_host: str = "127.0.0.1"
    """Bind address of the Telegram webhook ingress (``POST /tg/{tenant_id}``)."""
    router_port: int = 8080
    """Port of the webhook ingress; 0 picks a free port (tests)."""
    admin_host: str = "127.0.0.1"
    """Bind address of the admin API (never exposed publicly)."""
    admin_port: int = 8081
    """Port of the admin API, probes and metrics; 0 picks a free port."""
    admin_token: str | None = None
    """Bearer token for the admin API, the token named ``admin`` (more named tokens:
    ``otm token create``). Unset: generated once into ``data_dir/admin-token`` (mode 0600),
    where the CLI finds it. Every replica needs the same value."""
    admin_access_log: bool = True
    """One structured log line per admin API request (logger ``daemon.admin.access``, INFO;
    probes at DEBUG): method, path, status, actor (token name), source address, duration.
    Never a header, a query string or a body."""
    audit_max_entries: int = 100_000
    """Entries the admin audit log (Redis Stream ``otm:audit``) keeps at most; the oldest go
    first."""
    audit_retention_days: int = 365
    """Audit entries older than this are dropped (at the next admin mutation)."""

    registry: RegistryKind = "sqlite"
    """Tenant registry backend: ``sqlite`` (embedded) or ``dynamodb``."""
    dynamodb_table: str = "tenants"
    """DynamoDB table name; created on demand with its ``status`` GSI."""
    aws_region: str = "us-east-1"
    """Region for DynamoDB and S3 clients."""
    dynamodb_endpoint_url: str | None = None
    """Override endpoint (``AWS_ENDPOINT_URL_DYNAMODB``), e.g. a moto server."""

    state_store: StateStoreKind = "dir"
    """Tenant state backend: ``dir`` (embedded) or ``s3``."""
    s3_bucket: str = "otm-tenant-state"
    """Bucket holding each tenant's state under ``tenants/{id}/``: ``state/`` and
    ``workspace/`` files (Kubernetes agents, synced by their pod) or one
    ``snapshots/latest.tar.gz`` (local agents); the history ``snapshots/history/`` of both.
    Created at start if missing and the credentials allow it."""
    s3_endpoint_url: str | None = None
    """Override endpoint (``AWS_ENDPOINT_URL_S3``), e.g. a moto server."""
    snapshot_history_keep: int = 24
    """History snapshots kept per tenant, each as
    ``snapshots/history/<UTC time>-<trigger>.tar.gz`` (local agents: every sleep and every
    ``snapshot_interval_s`` while running adds one; Kubernetes agents on the s3 store: every
    sleep, packing the synced files, and every ``snapshot_interval_s`` while running);
    `otm tenant restore` picks from them. 0: no history."""
    snapshot_history_max_age_s: int = 7 * 24 * 3600
    """History snapshots older than this are removed (the newest one always stays); 0: no age
    limit, only ``snapshot_history_keep``."""
    snapshot_interval_s: int = 3600
    """A history snapshot of a running agent every this many seconds; 0: only on sleep.
    Local agents: their SQLite databases read through SQLite, so never half-written.
    Kubernetes agents on the s3 store: the leader packs each running tenant's synced files
    (what the sync sidecar last uploaded; a database copied mid-checkpoint can be torn)."""
    tenant_state_role_arn: str | None = None
    """Kubernetes + S3: the role (deploy/iam ``otm-tenant-state``) the daemon assumes to vend
    a claimed warm pod credentials scoped to ``tenants/{id}/`` (STS session policy). Unset:
    warm pods cannot reach tenant state, so wakes never claim them (cold start instead)."""
    tenant_credentials_ttl_s: int = 3600
    """Lifetime of vended tenant credentials (900-3600: role chaining caps it at one hour);
    the leader re-vends them 15 min before they expire."""
    sts_endpoint_url: str | None = None
    """Override endpoint (``AWS_ENDPOINT_URL_STS``), e.g. a moto server."""

    redis_url: str | None = None
    """Shared Redis. Unset: the daemon starts a private ``redis-server`` on a
    free loopback port with its data under ``data_dir/redis``."""
    redis_username: str | None = None
    """ACL user for ``redis_url`` (production: the daemon's own user, not ``default``).
    A user name inside the URL wins. ``rediss://`` URLs use TLS (ElastiCache in-transit
    encryption), verified against the system CA store."""
    redis_password: str | None = field(default=None, repr=False)
    """Password for ``redis_url`` (secret: masked by ``describe``, never logged).
    Prefer ``redis_password_file`` or an env var from a Kubernetes Secret."""
    redis_password_file: Path | None = None
    """File holding the Redis password (first line); read at start-up, so a rotated
    password needs a daemon restart. ``redis_password`` wins when both are set."""
    redis_cluster: bool = False
    """``redis_url`` points at a Redis Cluster (ElastiCache cluster mode enabled: use its
    configuration endpoint): the daemon uses the cluster client, which follows slot moves
    and failovers. Needs ``redis_url``; the private Redis of the default is standalone."""
    redis_server_binary: str = "redis-server"
    """Binary used for the private Redis of the embedded default."""

    runtime: RuntimeKind = "local"
    """Where agents run: ``local`` processes or ``kubernetes`` pods."""
    kubeconfig: str | None = None
    """Kubeconfig path; unset means in-cluster config."""
    tenant_namespace: str = "otm-tenants"
    """Namespace of tenant pods and their Secrets."""
    daemon_namespace: str = "otm-system"
    """Namespace of the daemon itself (leader Lease)."""
    agent_image: str = "ghcr.io/openclaw/openclaw:2026.9.6"
    """Default OpenClaw image for tenant pods (a tenant record may override)."""
    agent_compile_cache_dir: str | None = None
    """Kubernetes: a Node compile cache baked into the agent image (deploy/agent-image sets
    ``/opt/otm/tmp/node-compile-cache``); pods copy it into their /tmp before the gateway
    boots. Unset: every pod start recompiles OpenClaw's modules (~3.5 CPU-s, measured)."""
    agent_command: tuple[str, ...] = ()
    """Local runtime: command starting one agent. Empty: the bundled stand-in
    agent (``python -m otm.devtools.agent_stub``). A real gateway is e.g.
    ``/opt/node/bin/node /opt/openclaw/openclaw.mjs gateway``; an absolute
    first word also puts its directory first in the agent's ``PATH``. Relative
    paths (``.tools/...``) are resolved against the daemon's working directory
    (agents run in their own run directory)."""
    agent_image_commands: tuple[str, ...] = ()
    """Local runtime: what an image name means locally, ``<image>=<command>`` each (the
    command split like a shell line), e.g. ``'repo/openclaw:v2=.tools/v2/node openclaw.mjs
    gateway'``. ``agent_image`` (and a tenant without an image) runs ``agent_command``; an
    image listed here runs its command, for the tenants a rollout or ``otm tenant update
    --image`` moves to it; any other image fails the wake with that reason. Two tags may
    name the same command (one installed version under two tags)."""
    rollout_tick_s: float = 5.0
    """How often the leader re-evaluates a running rollout (waves, the health gate) when no
    tenant event prompts it sooner."""
    agent_sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """Local runtime: confinement of agents (daemon/adapters/local/sandbox.py).
    ``bwrap``: bubblewrap (own user/PID namespaces, host read-only, data directory
    hidden, only the agent's run dir writable); start-up fails if it does not work
    here. ``auto``: bwrap when it works, else ``none`` with a loud warning.
    ``none``: unconfined (same uid as the daemon); the environment is filtered anyway."""
    local_agent_ports: str = "20000-32767"
    """Local runtime: the loopback ports agents listen on, ``LOW-HIGH``. Keep it outside the
    kernel's ephemeral range (Linux: ``/proc/sys/net/ipv4/ip_local_port_range``, usually
    32768-60999), where outgoing connections could take a port between its pick and the
    agent's bind (the daemon warns at start when they overlap). Two ports per agent, warm
    ones included."""
    agent_model_base_url: str | None = None
    """OpenAI-compatible model server behind the model gateway (``model_upstream: openai``),
    ending in ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``). Agents never see it: their
    openclaw.json names the gateway (provider ``otm``) with their own tenant key. Unset (and
    no Bedrock): no gateway, no model provider is rendered (the stand-in agent then answers
    without one)."""
    agent_model_id: str = "default"
    """Model id agents ask for (their primary model is ``otm/<id>``); with ``openai`` also the
    upstream's model id."""
    agent_model_api_key: str | None = field(default=None, repr=False)
    """API key for ``agent_model_base_url``, held by the daemon's gateway only: masked by
    ``describe``, never logged, never rendered into any agent's config. Unset: no
    ``Authorization`` header upstream (servers without auth)."""
    model_upstream: Literal["openai", "bedrock"] = "openai"
    """Where the model gateway forwards agents' completions: ``openai`` (any OpenAI-compatible
    server at ``agent_model_base_url``, key ``agent_model_api_key``) or ``bedrock`` (Amazon
    Bedrock's Converse API through boto3 with the daemon's own IAM role, model
    ``bedrock_model_id``). The gateway is on when an upstream is configured (``bedrock``, or
    ``openai`` with ``agent_model_base_url``); agents then hold only their own tenant key."""
    bedrock_model_id: str = "anthropic.claude-3-5-haiku-20241022-v1:0"
    """Bedrock model (or inference profile) id the gateway invokes for ``agent_model_id``."""
    bedrock_endpoint_url: str | None = None
    """Override endpoint of the ``bedrock-runtime`` client (a Bedrock stand-in in tests)."""
    model_gateway_host: str = "127.0.0.1"
    """Bind address of the agent-facing listener: the model gateway (``/v1/chat/completions``,
    ``/v1/models``, with a model upstream) and the Bot API relay of polling tenants
    (``/tenants/{id}/telegram/...``, always)."""
    model_gateway_port: int = 8082
    """Port of that listener; 0 picks a free port (tests)."""
    model_gateway_url: str | None = None
    """URL agents reach that listener at, ending in ``/v1`` (Kubernetes: the daemon's gateway
    Service); a polling tenant's ``apiRoot`` is derived from it. Unset: this daemon's own
    listener (local runtime)."""
    model_key_secret: str | None = field(default=None, repr=False)
    """Secret from which per-tenant model keys are derived (HMAC); the same on every
    replica. Unset: generated once and shared by every replica through Redis
    (``otm:model-key-secret``); losing it changes every key (agents get their new key at
    their next wake)."""
    model_requests_per_min: int = 60
    """Per-tenant model requests per minute through the gateway; 0: unlimited."""
    model_tokens_per_day: int = 2_000_000
    """Per-tenant prompt+completion tokens per UTC day through the gateway; 0: unlimited."""
    inbound_messages_per_min: int = 0
    """Per-tenant Telegram updates per minute the router accepts; more get 429 with
    ``Retry-After`` (Telegram keeps and retries them: nothing lost, nothing buffered here).
    0: unlimited."""
    model_prices: tuple[str, ...] = ()
    """USD per million tokens for the cost estimate, ``<model>=<input>:<output>`` each (the
    model as counted: the upstream model id), e.g. ``gpt-4o-mini=0.15:0.6``."""
    agent_session_maintenance: Literal["warn", "enforce"] = "warn"
    """OpenClaw ``session.maintenance.mode`` of every agent. ``warn`` skips the SQLite
    maintenance planner that delays a new session's first reply by 3-7 s (measured); session
    age/count/disk caps are then only reported, not enforced (harmless for a one-chat tenant;
    ``openclaw sessions cleanup --enforce`` trims offline). ``enforce``: OpenClaw's default."""
    agent_plugins_allow: tuple[str, ...] = ("telegram",)
    """OpenClaw ``plugins.allow`` of every agent (the memory slot is ``none`` unless
    ``memory-core`` is listed). Only ``telegram``: 1 plugin instead of 15, 1.5-3 CPU-s less
    to ready and 4-5 less by the first reply (measured); the cost is no memory tools or
    dreaming, browser, canvas, github or extra provider plugins. Empty: every bundled plugin."""
    warm_agent_telegram: Literal["placeholder", "disabled"] = "placeholder"
    """How a pre-booted (warm) local gateway runs Telegram before it is bound to a tenant.
    ``placeholder``: a placeholder bot account whose Bot API calls go to a loopback Bot API
    of the warm pool's own (never to Telegram); the bind is a channel restart. ``disabled``:
    no account while warm; the bind is a plugin reload, ~1 s slower to the tenant's webhook
    accepting (measured with OpenClaw 2026.9.6: 1.6 s vs 2.4-3.6 s at load 4-5)."""
    warm_pool_warmup: Literal["none", "turn"] = "none"
    """``turn``: once a local warm gateway is ready, run one throw-away turn on its ``warm``
    agent (``/hooks/agent``, nothing delivered) before it counts as ready, so the modules
    of the reply path are loaded before a tenant is bound. Costs one model call (a full
    system prompt, ~10k tokens) and 5-7 CPU-s per warm boot; measured 0.5-1 s off a bound
    gateway's first reply."""
    warm_notice_after_s: float = 2.0
    """A warm start (a pre-booted gateway bound at claim) sends the "starting up" notice only
    if it is not ready within this many seconds; a cold start sends it at once (its boot
    takes 15 s or more)."""
    warm_pool_refill_pause_s: float = 15.0
    """Local runtime: no warm gateway boots this soon after a claim (a boot takes a core for
    ~15 s, which the bound gateway's first turn needs more). The pool size itself is the live
    config ``warm_pool_target``; boots are one at a time and wait for cold starts."""

    telegram_api_base: str = "https://api.telegram.org"
    """Bot API root used for notices, ``setWebhook``, ``getUpdates`` and agents' calls (a
    fake one in tests); polling tenants' agents reach it through the daemon's relay."""
    public_base_url: str | None = None
    """Public URL Telegram reaches the router at; webhooks become
    ``{public_base_url}/tg/{tenant_id}``. Unset: no webhook registration."""
    ingress: IngressKind = "webhook"
    """How tenants without their own ``ingress`` receive updates: ``webhook`` (Telegram
    POSTs to the router at ``public_base_url``) or ``polling`` (the daemon long-polls
    ``getUpdates``, one poller per tenant across replicas; for deployments without a public
    HTTPS URL)."""
    poll_timeout_s: int = 30
    """Long-poll timeout sent with each ``getUpdates`` (seconds, 1-50): how long Telegram holds
    an empty poll open. Longer means fewer requests per idle tenant."""

    default_idle_timeout_s: int = 600
    """Idle timeout for tenants without their own; live-config overridable."""
    wake_timeout_s: float = 300.0
    """How long one wake may take before it counts as a failed attempt (local runtime)."""
    k8s_wake_timeout_s: float = 900.0
    """Kubernetes runtime: ``wake_timeout_s`` there. A cold start on a metal node that was
    just launched (Karpenter, kata-deploy, image pull, VM boot) can take over 300 s."""
    k8s_provisioning_timeout_s: float = 1800.0
    """Kubernetes runtime: how long a wake keeps waiting while its pod is Unschedulable
    (capacity being provisioned). A wake that runs out of it is not counted as a failed
    attempt: the cluster lacked capacity, the tenant did nothing wrong."""
    agent_stop_grace_s: float = 330.0
    """Grace period for an agent's turn to drain on stop (OpenClaw: 330 s)."""
    max_body_bytes: int = 1 << 20
    """Largest accepted webhook body (Telegram updates are far smaller)."""
    router_max_connections: int = 1000
    """Open connections the webhook listener accepts; more are answered 503 and
    closed at once. Held under half the process's file-descriptor limit."""
    router_header_timeout_s: float = 10.0
    """A router connection must send a request's headers within this time (of
    opening, or of its previous response), else it is closed."""
    router_body_timeout_s: float = 30.0
    """Reading one webhook body may take this long; slower bodies get 408."""
    reconcile_interval_s: float = 60.0
    """Period of the reconciler's safety-net full resync (leader only); instance
    events are handled as they arrive, this only catches what events missed."""
    leader_lease_s: float = 15.0
    """Leader lease duration: a dead leader is replaced within this time."""

    gc_young_threshold: int = 10_000
    """Python's garbage collector: net allocations between two collections of its young
    generation (Python's default is 700; 0 keeps it). With 700, under a steady stream of
    updates the objects of the requests in flight are promoted at every collection, and
    every few seconds that forces a full collection of the whole heap, which stops the event
    loop for its duration (bench/hot_path, 1,000 tenants: ~280,000 objects, ~200 ms every
    ~3 s at 2,000 updates/s). At 10,000 most of them are gone before a collection looks."""

    log_level: str = "INFO"
    """Root log level."""
    log_format: Literal["text", "json"] = "text"
    """``json`` for production log shipping."""

    def redis_credentials(self) -> dict[str, str]:
        """username/password keyword arguments for the Redis client (empty: none set)."""
        out: dict[str, str] = {}
        if self.redis_username:
            out["username"] = self.redis_username
        password = self.redis_password
        if password is None and self.redis_password_file is not None:
            try:
                password = self.redis_password_file.read_text().splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise SettingsError(f"cannot read redis_password_file: {exc}") from None
        if password:
            out["password"] = password
        return out

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def agents_dir(self) -> Path:
        return self.data_dir / "agents"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def model_gateway_enabled(self) -> bool:
        """An upstream is configured: agents get the gateway as their model provider."""
        return self.model_upstream == "bedrock" or bool(self.agent_model_base_url)


ENV_PREFIX = "OTM_"
# Settings that conventional AWS variables also set (lower precedence than OTM_*).
_AWS_ENV = {
    "dynamodb_endpoint_url": "AWS_ENDPOINT_URL_DYNAMODB",
    "s3_endpoint_url": "AWS_ENDPOINT_URL_S3",
    "sts_endpoint_url": "AWS_ENDPOINT_URL_STS",
    "aws_region": "AWS_REGION",
}


def _field_types() -> dict[str, Any]:
    return get_type_hints(Settings)


def _coerce(name: str, raw: Any) -> Any:
    """Turn a raw flag/env/YAML value into the field's type, or explain why not."""
    hint = _field_types()[name]
    if raw is None:
        return None
    args = get_args(hint)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")
    if hint is Path or Path in args:
        return Path(str(raw)).expanduser()
    if hint is int or (int in args and str not in args):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if hint is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if hint == tuple[str, ...]:
        if isinstance(raw, str):
            import shlex

            return tuple(shlex.split(raw))
        return tuple(str(part) for part in raw)
    literal_values = _literal_values(hint)
    if literal_values:
        if raw not in literal_values:
            allowed = ", ".join(literal_values)
            raise SettingsError(f"{name}: expected one of {allowed}, got {raw!r}")
        return raw
    return str(raw)


def _literal_values(hint: Any) -> tuple[str, ...]:
    args = get_args(hint)
    if args and all(isinstance(a, str) for a in args):
        return args
    return ()


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from flags > env > YAML file > defaults.

    ``config_file`` defaults to ``$OTM_CONFIG`` when set. Unknown keys in the
    file are an error (a typo should not silently fall back to a default).
    """
    env = os.environ if env is None else env
    names = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or (Path(env["OTM_CONFIG"]) if env.get("OTM_CONFIG") else None)
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must be a mapping")
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise SettingsError(f"config file {path}: unknown settings {', '.join(unknown)}")
        values.update(loaded)

    for name, var in _AWS_ENV.items():
        if env.get(var):
            values[name] = env[var]
    for name in names:
        var = ENV_PREFIX + name.upper()
        if env.get(var) not in (None, ""):
            values[name] = env[var]

    for name, value in (flags or {}).items():
        if name not in names:
            raise SettingsError(f"unknown setting {name}")
        if value is not None:
            values[name] = value

    coerced = {name: _coerce(name, value) for name, value in values.items()}
    settings = Settings(**coerced)
    _validate(settings)
    return settings


def wake_timeout_s(settings: Settings) -> float:
    """How long one wake may wait for readiness on the configured runtime."""
    return (
        settings.k8s_wake_timeout_s if settings.runtime == "kubernetes" else settings.wake_timeout_s
    )


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-32767"`` → ``(20000, 32767)``: unprivileged ports, at least two of them."""
    low_text, _, high_text = text.partition("-")
    try:
        low, high = int(low_text), int(high_text)
    except ValueError:
        raise ValueError(f"expected LOW-HIGH, e.g. 20000-32767, got {text!r}") from None
    if not 1024 <= low < high <= 65535:
        raise ValueError(f"expected 1024 <= LOW < HIGH <= 65535, got {text!r}")
    return low, high


def longest_wake_s(settings: Settings) -> float:
    """The longest a wake may legitimately stay in ``provisioning``."""
    if settings.runtime == "kubernetes":
        return max(settings.k8s_wake_timeout_s, settings.k8s_provisioning_timeout_s)
    return settings.wake_timeout_s


def _validate(settings: Settings) -> None:
    for name in ("router_port", "admin_port", "model_gateway_port"):
        port = getattr(settings, name)
        if not 0 <= port <= 65535:
            raise SettingsError(f"{name}: {port} is not a TCP port")
    if settings.audit_max_entries <= 0 or settings.audit_retention_days <= 0:
        raise SettingsError("audit_max_entries and audit_retention_days must be positive")
    if settings.default_idle_timeout_s <= 0:
        raise SettingsError("default_idle_timeout_s must be positive")
    if settings.redis_cluster and settings.redis_url is None:
        raise SettingsError("redis_cluster needs redis_url (the private Redis is standalone)")
    if min(settings.wake_timeout_s, settings.k8s_wake_timeout_s) <= 0:
        raise SettingsError("wake_timeout_s and k8s_wake_timeout_s must be positive")
    if settings.max_body_bytes <= 0:
        raise SettingsError("max_body_bytes must be positive")
    if (
        settings.router_max_connections <= 0
        or settings.router_header_timeout_s <= 0
        or settings.router_body_timeout_s <= 0
    ):
        raise SettingsError(
            "router_max_connections, router_header_timeout_s and router_body_timeout_s "
            "must be positive"
        )
    snapshot_limits = (
        settings.snapshot_history_keep,
        settings.snapshot_history_max_age_s,
        settings.snapshot_interval_s,
    )
    if min(snapshot_limits) < 0:
        raise SettingsError(
            "snapshot_history_keep, snapshot_history_max_age_s and snapshot_interval_s "
            "must not be negative"
        )
    if not 1 <= settings.poll_timeout_s <= 50:
        raise SettingsError("poll_timeout_s must be between 1 and 50")
    if settings.gc_young_threshold < 0:
        raise SettingsError("gc_young_threshold must be >= 0 (0 keeps Python's default)")
    if settings.reconcile_interval_s <= 0 or settings.leader_lease_s <= 0:
        raise SettingsError("reconcile_interval_s and leader_lease_s must be positive")
    base_url = settings.agent_model_base_url
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"agent_model_base_url: expected an http(s) URL, got {base_url!r}")
    if not settings.agent_model_id:
        raise SettingsError("agent_model_id must not be empty")
    if (
        min(
            settings.model_requests_per_min,
            settings.model_tokens_per_day,
            settings.inbound_messages_per_min,
        )
        < 0
    ):
        raise SettingsError(
            "model_requests_per_min, model_tokens_per_day, inbound_messages_per_min must be >= 0"
        )
    try:
        parse_prices(settings.model_prices)
    except ValueError as exc:
        raise SettingsError(f"model_prices: {exc}") from None
    try:
        parse_image_commands(settings.agent_image_commands)
    except ValueError as exc:
        raise SettingsError(f"agent_image_commands: {exc}") from None
    if settings.rollout_tick_s <= 0:
        raise SettingsError("rollout_tick_s must be > 0")
    try:
        parse_port_range(settings.local_agent_ports)
    except ValueError as exc:
        raise SettingsError(f"local_agent_ports: {exc}") from None


SECRET_SETTINGS = frozenset(
    {"admin_token", "agent_model_api_key", "redis_password", "model_key_secret"}
)


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as a JSON-able dict with secrets masked (for logs and `otm status`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name in SECRET_SETTINGS:
            value = "***" if value else None
        elif f.name == "redis_url" and value:
            value = _mask_url_password(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _mask_url_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
