"""Tenant-scoped S3 credentials for claimed warm pods (daemon-vended STS sessions).

Why: EKS Pod Identity tags a pod's session with the pod's name, and the tenant IAM policy
scopes S3 to ``tenants/<pod name>/``. A warm pod keeps its ``warm-*`` name after a claim,
so its own credentials reach no tenant state (deploy/iam/README.md). At bind the daemon
therefore calls ``sts:AssumeRole`` on the tenant-state role (``tenant_state_role_arn``)
with an inline *session policy* that allows only ``tenants/{id}/``; the effective
permissions of such a session are the intersection of the role's policy and the session
policy, so the claimed pod can read and write its tenant's prefix and nothing else.

The credentials travel in the bind request (``sync_env``) to the pod's bootstrap, which
writes them for the sync sidecar. Role-chained sessions last at most one hour, so the
leader's ``warm-credentials`` task (``CredentialRefresher``) re-vends them before they
expire and re-POSTs them to the pod's bind endpoint; the expiry is kept in a pod
annotation, so a restarted daemon or a new leader knows what is due.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.kube import names

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MIN_DURATION_S = 900
"""STS refuses shorter sessions."""
MAX_CHAINED_DURATION_S = 3600
"""A role assumed with role credentials (the daemon's own Pod Identity session) lasts at
most one hour, whatever the role's MaxSessionDuration."""


def tenant_prefix(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/"


def session_policy(bucket: str, tenant_id: str) -> JSON:
    """The inline session policy of one tenant's credentials: list, read, write and delete
    under ``tenants/{id}/`` only (the trailing slash keeps ``alice`` out of ``alice2``)."""
    prefix = tenant_prefix(tenant_id)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListTenantPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
            },
            {
                "Sid": "ReadWriteTenantObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
            },
        ],
    }


@dataclass(frozen=True)
class TenantCredentials:
    tenant_id: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: datetime

    def env(self) -> dict[str, str]:
        """What the sync sidecar's aws-cli reads (env credentials win over Pod Identity's
        container credentials in the AWS credential chain)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "OTM_CREDENTIALS_EXPIRE_AT": self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def __repr__(self) -> str:  # never log the secret parts
        return f"TenantCredentials({self.tenant_id!r}, expires_at={self.expires_at:%H:%M:%SZ})"


class CredentialVendor:
    """Assume the tenant-state role with a per-tenant session policy (boto3, in a thread)."""

    def __init__(
        self,
        client: Any,  # a boto3 STS client (no STS type stubs are installed)
        *,
        role_arn: str,
        bucket: str,
        duration_s: int = MAX_CHAINED_DURATION_S,
    ) -> None:
        if not MIN_DURATION_S <= duration_s <= MAX_CHAINED_DURATION_S:
            raise ValueError(
                f"credential duration must be {MIN_DURATION_S}..{MAX_CHAINED_DURATION_S} s"
            )
        self.client = client
        self.role_arn = role_arn
        self.bucket = bucket
        self.duration_s = duration_s

    async def vend(self, tenant_id: str) -> TenantCredentials:
        policy = json.dumps(session_policy(self.bucket, tenant_id), separators=(",", ":"))

        def assume() -> Any:
            return self.client.assume_role(
                RoleArn=self.role_arn,
                # Tenant ids are DNS labels (<= 63 chars); CloudTrail shows whose session it is.
                RoleSessionName=tenant_id,
                Policy=policy,
                DurationSeconds=self.duration_s,
            )

        answer = await asyncio.to_thread(assume)
        creds = answer["Credentials"]
        expires = creds["Expiration"]
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        return TenantCredentials(
            tenant_id=tenant_id,
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expires_at=expires.astimezone(UTC),
        )


ANNOTATION_EXPIRES = "otm/credentials-expire-at"


def parse_expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def due_for_refresh(annotations: Mapping[str, str], now: datetime, *, margin: timedelta) -> bool:
    """A bound warm pod whose credentials expire within ``margin`` (or whose expiry is
    unknown: a bind that crashed before annotating) needs new ones."""
    expires = parse_expiry(annotations.get(ANNOTATION_EXPIRES))
    return expires is None or expires - now <= margin


@dataclass(eq=False, kw_only=True)
class CredentialRefresher:
    """Leader task ``warm-credentials``: every ``interval_s``, re-vend the credentials of
    bound warm pods that are due and push them to the pod (``push`` re-POSTs the bind
    with the new ``sync_env`` and re-annotates the pod). One pod's failure is logged and
    retried on the next pass; it never stops the others."""

    vendor: CredentialVendor
    bound_pods: Callable[[], list[JSON]]
    push: Callable[[JSON, TenantCredentials], Awaitable[None]]
    interval_s: float = 60.0
    margin: timedelta = timedelta(minutes=15)
    refreshed: int = field(default=0, init=False)

    async def refresh_due(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        done = 0
        for pod in self.bound_pods():
            meta = pod.get("metadata") or {}
            tenant_id = (meta.get("labels") or {}).get(names.LABEL_TENANT)
            if not tenant_id or not due_for_refresh(
                meta.get("annotations") or {}, now, margin=self.margin
            ):
                continue
            try:
                creds = await self.vendor.vend(tenant_id)
                await self.push(pod, creds)
            except Exception:
                log.exception("refreshing the credentials of %s failed", meta.get("name"))
                continue
            done += 1
            self.refreshed += 1
            log.info("refreshed S3 credentials of %s for %s", meta.get("name"), tenant_id)
        return done

    async def run(self) -> None:
        while True:
            await self.refresh_due()
            await asyncio.sleep(self.interval_s)
