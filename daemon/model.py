"""Tenant data model, id rules and the errors ports raise."""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, get_args


class TenantStatus(StrEnum):
    IDLE = "idle"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPING = "stopping"
    SUSPENDED = "suspended"
    FAILED = "failed"
    DELETED = "deleted"


IngressKind = Literal["webhook", "polling"]
"""How a tenant's updates arrive: Telegram POSTs them to the router (``webhook``), or the
daemon fetches them with ``getUpdates`` long polling (``polling``; no public URL needed)."""
INGRESS_KINDS: tuple[str, ...] = get_args(IngressKind)


def validate_ingress(value: object) -> IngressKind | None:
    """A tenant's ingress (None: the daemon's ``ingress`` setting applies); else ValueError."""
    if value is None:
        return None
    if value == "webhook":
        return "webhook"
    if value == "polling":
        return "polling"
    raise ValueError(f"ingress must be one of {', '.join(INGRESS_KINDS)} (or null), got {value!r}")


DETACHED: dict[str, None] = {"endpoint": None, "gateway_url": None, "pod_name": None}
"""Registry changes that detach a tenant from its instance (``registry.update(**DETACHED)``):
every way a tenant stops (sleep, failed wake, suspend, agent lost) clears the same fields."""

# A tenant id becomes part of pod, Secret and S3 key names: lowercase DNS label.
TENANT_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Leaves room in 63-character Kubernetes names for prefixes such as "otm-tenant-".
MAX_TENANT_ID_LEN = 40
RESERVED_PREFIX = "warm-"


class OtmError(Exception):
    """Base of errors that map to a clear client-facing message."""


class InvalidTenantId(OtmError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(
            f"invalid tenant id {tenant_id!r}: use 1-{MAX_TENANT_ID_LEN} lowercase letters, "
            "digits and '-', starting and ending with a letter or digit, not starting with 'warm-'"
        )


class TenantNotFound(OtmError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} not found")
        self.tenant_id = tenant_id


class TenantExists(OtmError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} already exists")
        self.tenant_id = tenant_id


class ConditionFailed(OtmError):
    """A conditional write lost: the record changed underneath (another replica won)."""

    def __init__(self, tenant_id: str, detail: str) -> None:
        super().__init__(f"tenant {tenant_id!r}: {detail}")
        self.tenant_id = tenant_id


def validate_tenant_id(tenant_id: str) -> str:
    if (
        not isinstance(tenant_id, str)
        or len(tenant_id) > MAX_TENANT_ID_LEN
        or not TENANT_ID_RE.fullmatch(tenant_id)
        # Pods are named after tenants; "warm-" names belong to the warm pool.
        or tenant_id.startswith(RESERVED_PREFIX)
    ):
        raise InvalidTenantId(str(tenant_id))
    return tenant_id


# Telegram's token shape. It becomes part of the Bot API URL path the daemon calls
# (/bot<token>/setWebhook): anything else ("/../", "?") would change the request.
BOT_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")


def validate_bot_token(token: object) -> str:
    """A Telegram bot token (``<bot id>:<secret>``), or "" for no bot; else ValueError."""
    if not isinstance(token, str):
        raise ValueError("bot_token must be a string")
    if token and (len(token) > 256 or not BOT_TOKEN_RE.fullmatch(token)):
        # The value is a secret: never echo it.
        raise ValueError("bot_token must look like 123456789:AAE... (digits, ':', [A-Za-z0-9_-])")
    return token


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_secret() -> str:
    """32 random bytes, hex: webhook secrets, gateway and hooks tokens."""
    return secrets.token_hex(32)


# Fields never returned by the API nor logged.
SECRET_FIELDS = frozenset(
    {"bot_token", "webhook_secret", "gateway_token", "hooks_token", "model_key_id"}
)
# Fields a registry update may change (identity and creation time are fixed).
MUTABLE_FIELDS = frozenset(
    {
        "status",
        "status_reason",
        "bot_token",
        "idle_timeout_s",
        "endpoint",
        "gateway_url",
        "pod_name",
        "image",
        "labels",
        "last_active_at",
        "wake_attempts",
        "model_key_id",
        "ingress",
    }
)


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    status: TenantStatus = TenantStatus.IDLE
    status_reason: str = ""
    """Why the tenant is in its status (e.g. the last wake error when failed)."""
    bot_token: str = ""
    webhook_secret: str = field(default_factory=new_secret)
    gateway_token: str = field(default_factory=new_secret)
    hooks_token: str = field(default_factory=new_secret)
    idle_timeout_s: int | None = None
    """None: the live-config default applies."""
    endpoint: str | None = None
    """Agent webhook URL while running, e.g. http://10.0.3.7:8787/telegram-webhook."""
    gateway_url: str | None = None
    """Agent gateway base URL while running (health, activity)."""
    pod_name: str | None = None
    image: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    last_active_at: datetime = field(default_factory=utcnow)
    wake_attempts: int = 0
    model_key_id: str = ""
    """Id of the tenant's current model key (daemon/model_gateway/keys.py); empty: no key
    (records from before the gateway, until ``otm tenant rotate-key``)."""
    ingress: IngressKind | None = None
    """``webhook`` or ``polling``; None: the daemon's ``ingress`` setting applies."""
    version: int = 1
    """Incremented by every write; conditional updates may pin it."""

    def __post_init__(self) -> None:
        validate_tenant_id(self.tenant_id)

    def ingress_mode(self, default: IngressKind) -> IngressKind:
        """The ingress in effect: the tenant's own, else the daemon's ``default``."""
        return self.ingress or default

    def public(self) -> dict[str, Any]:
        """JSON-able snake_case view without secrets (API responses, logs)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in SECRET_FIELDS:
                continue
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, TenantStatus):
                value = value.value
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        out["has_bot_token"] = bool(self.bot_token)
        out["has_model_key"] = bool(self.model_key_id)
        return out

    def __repr__(self) -> str:  # never leak secrets through logging of a record
        return f"Tenant(tenant_id={self.tenant_id!r}, status={self.status.value!r})"


_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_./]{0,61}[A-Za-z0-9])?")


def validate_labels(labels: Any) -> dict[str, str]:
    """Labels follow Kubernetes label-value rules so they can be selected on."""
    if not isinstance(labels, dict):
        raise ValueError("labels must be an object of string values")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY_RE.fullmatch(key):
            raise ValueError(f"invalid label key {key!r}")
        if not isinstance(value, str) or not re.fullmatch(
            r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", value
        ):
            raise ValueError(f"invalid label value {value!r} for {key!r}")
        out[key] = value
    return out


def tenant_to_record(tenant: Tenant) -> dict[str, Any]:
    """Full record (secrets included) as plain JSON types, for registry adapters."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(tenant):
        value = getattr(tenant, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, TenantStatus):
            value = value.value
        out[f.name] = value
    return out


def tenant_from_record(record: dict[str, Any]) -> Tenant:
    names = {f.name for f in dataclasses.fields(Tenant)}
    kwargs: dict[str, Any] = {k: v for k, v in record.items() if k in names}
    kwargs["status"] = TenantStatus(kwargs.get("status", "idle"))
    for key in ("created_at", "updated_at", "last_active_at"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = datetime.fromisoformat(kwargs[key])
    for key in ("version", "wake_attempts"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    if kwargs.get("idle_timeout_s") is not None:
        kwargs["idle_timeout_s"] = int(kwargs["idle_timeout_s"])
    kwargs["labels"] = dict(kwargs.get("labels") or {})
    return Tenant(**kwargs)


def check_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate an update's field names and normalise values to record types."""
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    out = dict(changes)
    if "status" in out:
        out["status"] = TenantStatus(out["status"])
    if "labels" in out:
        out["labels"] = validate_labels(out["labels"])
    if "ingress" in out:
        out["ingress"] = validate_ingress(out["ingress"])
    return out
