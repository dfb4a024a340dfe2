"""Daemon-vended tenant credentials (daemon/kube/tenant_credentials.py) under the IAM documents of
deploy/iam/: an STS session's permissions are the intersection of the assumed role's policy
and the session policy (IAM policy evaluation logic), evaluated here with iam_eval."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.kube.tenant_credentials import session_policy
from tests.deploy.iam_docs import ACCOUNT_ID, BUCKET, load
from tests.deploy.iam_eval import is_allowed

ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/otm-tenant-state"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")


def session_allows(tenant_id: str, action: str, resource: str, **context: str) -> bool:
    """What tenant_id's vended session may do: role policy AND session policy."""
    role = load("tenant-state-policy.json")
    session = session_policy(BUCKET, tenant_id)
    return is_allowed(role, action, resource, context) and is_allowed(
        session, action, resource, context
    )


def key(tenant_id: str, rest: str) -> str:
    return f"{BUCKET_ARN}/tenants/{tenant_id}/{rest}"


def test_a_claimed_pod_reads_and_writes_its_tenants_prefix() -> None:
    for action in OBJECT_ACTIONS:
        assert session_allows("alice", action, key("alice", "state/agents/main/agent/db"))
        assert session_allows("alice", action, key("alice", "workspace/AGENTS.md"))
    assert session_allows("alice", "s3:ListBucket", BUCKET_ARN, **{"s3:prefix": "tenants/alice/"})
    assert session_allows(
        "alice", "s3:ListBucket", BUCKET_ARN, **{"s3:prefix": "tenants/alice/state/"}
    )


@pytest.mark.parametrize("other", ["bob", "alice2", "ali"])
def test_a_claimed_pod_cannot_touch_another_tenants_prefix(other: str) -> None:
    for action in OBJECT_ACTIONS:
        assert not session_allows("alice", action, key(other, "state/openclaw.sqlite"))
    for prefix in (f"tenants/{other}/", f"tenants/{other}", "tenants/", "tenants/alice", ""):
        assert not session_allows("alice", "s3:ListBucket", BUCKET_ARN, **{"s3:prefix": prefix})
    assert not session_allows("alice", "s3:ListBucket", BUCKET_ARN)


def test_nothing_outside_the_bucket_or_beyond_objects() -> None:
    assert not session_allows("alice", "s3:GetObject", f"{BUCKET_ARN}/other/x")
    assert not session_allows(
        "alice", "s3:GetObject", "arn:aws:s3:::someone-else/tenants/alice/x"
    )
    for action in ("s3:PutBucketPolicy", "s3:DeleteBucket", "dynamodb:GetItem", "sts:AssumeRole"):
        assert not session_allows("alice", action, BUCKET_ARN)


def test_the_role_alone_is_not_tenant_scoped() -> None:
    """Why the session policy is load-bearing: the role covers every tenant."""
    role = load("tenant-state-policy.json")
    assert is_allowed(role, "s3:GetObject", key("bob", "state/x"), {})


def test_only_the_daemon_may_assume_the_tenant_state_role() -> None:
    daemon = load("daemon-policy.json")
    assert is_allowed(daemon, "sts:AssumeRole", ROLE_ARN, {})
    assert not is_allowed(daemon, "sts:AssumeRole", ROLE_ARN.replace("state", "other"), {})
    trust: dict[str, Any] = load("tenant-state-trust-policy.json")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/otm-daemon"}
    assert statement["Action"] == "sts:AssumeRole"
    # The tenant pods' own policy still gives warm pods nothing (unchanged ABAC scoping).
    tenant = load("tenant-policy.json")
    assert not any("sts:" in str(s["Action"]) for s in tenant["Statement"])
