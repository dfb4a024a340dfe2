"""The IAM documents of deploy/iam/ with their placeholders filled in, and the session
tags EKS Pod Identity gives a pod: inputs for iam_eval.is_allowed."""

from __future__ import annotations

import json
from typing import Any

from daemon.kube import names
from tests.deploy.render import REPO_ROOT

Doc = dict[str, Any]
IAM_DIR = REPO_ROOT / "deploy" / "iam"
ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
CLUSTER = "otm"
BUCKET = "otm-tenant-state-111122223333"
CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/{CLUSTER}"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/tenants"


BEDROCK_MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
"""deploy/kustomize/overlays/eks/site.env's model (the setup guide's default)."""


def load(name: str, *, bucket: str = BUCKET, account: str = ACCOUNT_ID) -> Doc:
    """deploy/iam/NAME as `sed` in docs/setup-guide.md fills it in."""
    text = (IAM_DIR / name).read_text()
    site = {
        "@ACCOUNT_ID@": account,
        "@REGION@": REGION,
        "@CLUSTER@": CLUSTER,
        "@BUCKET@": bucket,
        "@BEDROCK_MODEL_ID@": BEDROCK_MODEL_ID,
    }
    for placeholder, value in site.items():
        text = text.replace(placeholder, value)
    assert "@" not in text, f"unknown placeholder left in {name}"
    doc: Doc = json.loads(text)
    return doc


def pod_session(
    pod_name: str, namespace: str = names.TENANT_NAMESPACE, **extra: str
) -> dict[str, str]:
    """The session tags EKS Pod Identity puts on a pod's credentials."""
    return {
        "aws:PrincipalTag/eks-cluster-arn": CLUSTER_ARN,
        "aws:PrincipalTag/eks-cluster-name": CLUSTER,
        "aws:PrincipalTag/kubernetes-namespace": namespace,
        "aws:PrincipalTag/kubernetes-service-account": names.TENANT_SERVICE_ACCOUNT,
        "aws:PrincipalTag/kubernetes-pod-name": pod_name,
        "aws:PrincipalTag/kubernetes-pod-uid": "0b8a3f6e-5d1c-4c1e-9a8e-2f5d6c7b8a90",
        **extra,
    }


MOTO_ACCOUNT = "123456789012"
"""moto's default account: roles created in moto live there."""
STATE_ROLE = "otm-tenant-state"


def create_state_role(iam: Any, bucket: str) -> str:
    """The tenant-state role of deploy/iam in moto, as the setup guide creates it; its ARN."""
    trust = load("tenant-state-trust-policy.json", bucket=bucket, account=MOTO_ACCOUNT)
    policy = load("tenant-state-policy.json", bucket=bucket, account=MOTO_ACCOUNT)
    iam.create_role(RoleName=STATE_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName=STATE_ROLE, PolicyName="tenant-state", PolicyDocument=json.dumps(policy)
    )
    return f"arn:aws:iam::{MOTO_ACCOUNT}:role/{STATE_ROLE}"
