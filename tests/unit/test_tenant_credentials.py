"""Pure parts of daemon/kube/tenant_credentials.py: the refresh schedule and what is never
logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.kube.tenant_credentials import (
    ANNOTATION_EXPIRES,
    CredentialRefresher,
    CredentialVendor,
    TenantCredentials,
    due_for_refresh,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_due_for_refresh() -> None:
    margin = timedelta(minutes=15)
    soon = {ANNOTATION_EXPIRES: "2026-12-04T12:10:00Z"}
    later = {ANNOTATION_EXPIRES: "2026-12-04T12:50:00Z"}
    assert due_for_refresh(soon, NOW, margin=margin)
    assert not due_for_refresh(later, NOW, margin=margin)
    # Unknown expiry (a bind that crashed before annotating): refresh.
    assert due_for_refresh({}, NOW, margin=margin)
    assert due_for_refresh({ANNOTATION_EXPIRES: "garbage"}, NOW, margin=margin)


def test_credentials_never_show_their_secrets() -> None:
    creds = TenantCredentials("alice", "ASIAKEY", "secret-part", "token-part", NOW)
    assert "secret-part" not in repr(creds) and "token-part" not in repr(creds)
    assert creds.env()["AWS_SESSION_TOKEN"] == "token-part"
    assert creds.env()["OTM_CREDENTIALS_EXPIRE_AT"] == "2026-12-04T12:00:00Z"


def test_session_lifetime_is_bounded_by_role_chaining() -> None:
    for bad in (899, 3601):
        with pytest.raises(ValueError):
            CredentialVendor(object(), role_arn="arn", bucket="b", duration_s=bad)


async def test_one_failing_pod_does_not_stop_the_others() -> None:
    class Vendor:
        async def vend(self, tenant_id: str) -> TenantCredentials:
            if tenant_id == "bad":
                raise RuntimeError("sts down")
            return TenantCredentials(tenant_id, "k", "s", "t", NOW + timedelta(hours=1))

    pushed: list[str] = []

    async def push(pod: dict[str, Any], creds: TenantCredentials) -> None:
        pushed.append(creds.tenant_id)

    def pod(tenant: str, expires: str | None) -> dict[str, Any]:
        annotations = {ANNOTATION_EXPIRES: expires} if expires else {}
        return {
            "metadata": {
                "name": f"warm-{tenant}",
                "labels": {"otm/tenant": tenant},
                "annotations": annotations,
            }
        }

    pods = [pod("bad", None), pod("fresh", "2026-12-04T13:00:00Z"), pod("due", None)]
    refresher = CredentialRefresher(
        vendor=Vendor(),  # type: ignore[arg-type]
        bound_pods=lambda: pods,
        push=push,
    )
    assert await refresher.refresh_due(NOW) == 1
    assert pushed == ["due"]
