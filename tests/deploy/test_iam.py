"""The IAM documents under deploy/iam/: well-formed, and the ABAC scoping behaves as
designed (evaluated with iam_eval.py against Pod Identity's session tags)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from daemon.kube import names
from daemon.model import InvalidTenantId, validate_tenant_id
from tests.deploy.iam_docs import BUCKET, CLUSTER_ARN, IAM_DIR, TABLE_ARN, load, pod_session
from tests.deploy.iam_eval import is_allowed

Doc = dict[str, Any]


def state_key(tenant_id: str, rest: str) -> str:
    """tenants/<id>/... (DESIGN.md); the tenant's pod is named <id> (deploy/iam/README.md)."""
    return f"arn:aws:s3:::{BUCKET}/tenants/{names.tenant_pod_name(tenant_id)}/{rest}"


@pytest.mark.parametrize("name", sorted(p.name for p in IAM_DIR.glob("*.json")))
def test_policy_documents_are_well_formed(name: str) -> None:
    doc = load(name)
    assert doc["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in doc["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in doc["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert "Action" in statement
        assert ("Resource" in statement) != ("Principal" in statement)
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        ):
            assert re.fullmatch(r"[a-z0-9]+:[A-Za-z*]+", action), action


def test_tenant_pod_reads_and_writes_only_its_own_prefix() -> None:
    policy = load("tenant-policy.json")
    alice = pod_session(names.tenant_pod_name("alice"))
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert is_allowed(policy, action, state_key("alice", "state/openclaw.sqlite"), alice)
        assert is_allowed(policy, action, state_key("alice", "workspace/AGENTS.md"), alice)
        assert not is_allowed(policy, action, state_key("bob", "state/openclaw.sqlite"), alice)
        # A tenant whose id extends another's must not share its prefix.
        assert not is_allowed(policy, action, state_key("alice2", "state/x"), alice)
    assert not is_allowed(policy, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/other/x", alice)
    assert not is_allowed(policy, "s3:PutBucketPolicy", f"arn:aws:s3:::{BUCKET}", alice)


def test_tenant_pod_lists_only_its_own_prefix() -> None:
    policy = load("tenant-policy.json")
    bucket = f"arn:aws:s3:::{BUCKET}"

    def can_list(prefix: str) -> bool:
        return is_allowed(policy, "s3:ListBucket", bucket, {**alice, "s3:prefix": prefix})

    alice = pod_session(names.tenant_pod_name("alice"))
    assert can_list("tenants/alice/")
    assert can_list("tenants/alice/state/")
    assert not can_list("tenants/alice")  # would also list tenants/alice2/
    assert not can_list("tenants/")
    assert not can_list("tenants/bob/")
    assert not is_allowed(policy, "s3:ListBucket", bucket, alice)  # no prefix at all


@pytest.mark.parametrize(
    ("why", "session"),
    [
        ("same pod name, other namespace", pod_session("alice", namespace="default")),
        (
            "other service account",
            {**pod_session("alice"), "aws:PrincipalTag/kubernetes-service-account": "x"},
        ),
        (
            "other cluster",
            {
                **pod_session("alice"),
                "aws:PrincipalTag/eks-cluster-arn": CLUSTER_ARN.replace("/otm", "/dev"),
            },
        ),
        ("a warm pod, not yet a tenant", pod_session(f"{names.WARM_POD_PREFIX}x7k2p")),
        ("a pod named for another tenant", pod_session("bob")),
        ("no session tags (not Pod Identity)", {}),
    ],
)
def test_other_principals_get_nothing(why: str, session: dict[str, str]) -> None:
    policy = load("tenant-policy.json")
    bucket = f"arn:aws:s3:::{BUCKET}"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert not is_allowed(policy, action, state_key("alice", "state/x"), session), why
    assert not is_allowed(
        policy, "s3:ListBucket", bucket, {**session, "s3:prefix": "tenants/alice/"}
    ), why


def test_warm_pods_reach_no_state_even_under_their_own_name() -> None:
    """A warm pod keeps its generated name for life, so its credentials can never be a
    tenant's. Tenant ids cannot start with 'warm-' (daemon/model.py), so a prefix named
    after a warm pod is never a tenant's either; the policy denies it all the same."""
    policy = load("tenant-policy.json")
    warm = f"{names.WARM_POD_PREFIX}x7k2p"
    session = pod_session(warm)
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert not is_allowed(policy, "s3:GetObject", f"{bucket}/tenants/{warm}/state/x", session)
    assert not is_allowed(
        policy, "s3:ListBucket", bucket, {**session, "s3:prefix": f"tenants/{warm}/"}
    )


def test_warm_prefix_is_reserved_by_the_tenant_id_rules() -> None:
    """The policy's `warm-*` exclusion and the id validator must name the same prefix."""
    policy_text = (IAM_DIR / "tenant-policy.json").read_text()
    assert f'"{names.WARM_POD_PREFIX}*"' in policy_text
    validate_tenant_id("alice")
    with pytest.raises(InvalidTenantId):
        validate_tenant_id(f"{names.WARM_POD_PREFIX}1")


def test_daemon_reaches_the_registry_and_all_tenant_state() -> None:
    policy = load("daemon-policy.json")
    for action in (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ):
        assert is_allowed(policy, action, TABLE_ARN, {})
    assert is_allowed(policy, "dynamodb:Query", f"{TABLE_ARN}/index/status-index", {})
    assert is_allowed(policy, "dynamodb:DescribeTable", TABLE_ARN, {})
    for action in ("dynamodb:CreateTable", "dynamodb:UpdateTable", "dynamodb:DeleteTable"):
        assert not is_allowed(policy, action, TABLE_ARN, {})
    assert not is_allowed(policy, "dynamodb:GetItem", TABLE_ARN.replace("tenants", "other"), {})
    for tenant_id in ("alice", "bob"):
        assert is_allowed(policy, "s3:GetObject", state_key(tenant_id, "state/x"), {})
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert is_allowed(policy, "s3:ListBucket", bucket, {"s3:prefix": "tenants/alice/"})
    # The S3 adapter's startup check and readiness ping: a one-key list under tenants/.
    assert is_allowed(policy, "s3:ListBucket", bucket, {"s3:prefix": "tenants/"})
    # HeadBucket (an unconditioned ListBucket) and listing elsewhere are denied.
    assert not is_allowed(policy, "s3:ListBucket", bucket, {})
    assert not is_allowed(policy, "s3:ListBucket", bucket, {"s3:prefix": "other/"})
    for action in ("s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy"):
        assert not is_allowed(policy, action, bucket, {})
    assert not is_allowed(policy, "s3:GetObject", "arn:aws:s3:::someone-else/tenants/x", {})


@pytest.mark.parametrize(
    ("trust", "namespace", "account"),
    [
        ("tenant-trust-policy.json", names.TENANT_NAMESPACE, names.TENANT_SERVICE_ACCOUNT),
        ("daemon-trust-policy.json", names.DAEMON_NAMESPACE, names.DAEMON_SERVICE_ACCOUNT),
    ],
)
def test_trust_policies_admit_only_their_service_account(
    trust: str, namespace: str, account: str
) -> None:
    doc = load(trust)
    statement = doc["Statement"][0]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    required = statement["Condition"]["StringEquals"]
    assert required["aws:RequestTag/kubernetes-namespace"] == namespace
    assert required["aws:RequestTag/kubernetes-service-account"] == account
    assert required["aws:RequestTag/eks-cluster-arn"] == CLUSTER_ARN
