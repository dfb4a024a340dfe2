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


def load(name: str, *, bucket: str = BUCKET) -> Doc:
    """deploy/iam/NAME as `sed` in docs/setup-guide.md fills it in."""
    text = (IAM_DIR / name).read_text()
    site = {
        "@ACCOUNT_ID@": ACCOUNT_ID,
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
