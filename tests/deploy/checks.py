"""Offline checks for otm's Kubernetes manifests: pure functions that take rendered
documents (dicts, e.g. from `kubectl kustomize`) and return a list of problems (strings;
empty means fine).

- check_rendered(docs): everything, for a rendered overlay (including the Settings the
  daemon would load from its rendered environment: daemon_env.py).
- check_runtime_pod(pod, rendered_docs): a pod the daemon generates at runtime, against
  the render it will run next to (runtime class, priority, identity, Secrets, scheduling,
  NetworkPolicy coverage and isolation).

The pieces live in references.py, network.py, policy.py and karpenter.py; the objects a
render may name without containing them are listed (with who creates them) in
inventory.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import kubernetes_validate.utils  # type: ignore[import-untyped]

from daemon.kube import names
from daemon.model import InvalidTenantId, validate_tenant_id
from tests.deploy import inventory as inv
from tests.deploy.daemon_env import check_daemon_settings
from tests.deploy.karpenter import check_karpenter, pod_fits_pool
from tests.deploy.netpol import PodEndpoint
from tests.deploy.network import (
    check_isolation,
    check_network_policy_selectors,
    tenant_pod_isolation,
)
from tests.deploy.policy import check_container, check_hygiene, check_names, check_rbac
from tests.deploy.references import check_pod_spec_references, check_references

Doc = dict[str, Any]

KUBERNETES_VERSION = "1.37.0"
#: Custom resources without a bundled schema; karpenter.py checks their structure.
STRUCTURAL_KINDS = frozenset(
    {("karpenter.sh/v1", "NodePool"), ("karpenter.k8s.aws/v1", "EC2NodeClass")}
)
# kubernetes_validate re-reads and re-parses its JSON schema files (and the large
# _definitions.json) on every call; the files never change, so parse each one once.
# Validation itself still goes through the public kubernetes_validate.validate().
# all_versions() lists the schema directory on every call (twice per validation); the
# installed package does not change either.
if not hasattr(kubernetes_validate.utils.schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=256)(
        kubernetes_validate.utils.schema_contents
    )
if not hasattr(kubernetes_validate.utils.all_versions, "cache_info"):
    kubernetes_validate.utils.all_versions = functools.lru_cache(maxsize=1)(
        kubernetes_validate.utils.all_versions
    )
_SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|API_?KEY|CREDENTIAL", re.I)


def check_schema(doc: Doc, version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict OpenAPI schema check (unknown fields are errors). CRDs must be listed in
    STRUCTURAL_KINDS, otherwise a missing schema is a problem, not a pass."""
    if (doc.get("apiVersion"), doc.get("kind")) in STRUCTURAL_KINDS:
        return []
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{inv.ident(doc)}: no schema for {doc.get('apiVersion')} {doc.get('kind')}"]
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(p) for p in error.path)
        return [f"{inv.ident(doc)}: schema: {error.message} (at {path or '/'})"]
    return []


def check_schemas(docs: Iterable[Doc], version: str = KUBERNETES_VERSION) -> list[str]:
    return [problem for doc in docs for problem in check_schema(doc, version)]


def check_rendered(docs: list[Doc], runtime_pods: Iterable[Doc] | None = None) -> list[str]:
    """All checks for one rendered overlay. `runtime_pods` stand in for the pods the
    daemon creates in the tenants namespace (default: two tenants and a warm pod)."""
    pods = list(inv.default_runtime_pods() if runtime_pods is None else runtime_pods)
    return [
        *check_schemas(docs),
        *check_references(docs),
        *check_names(docs),
        *check_daemon_settings(docs),
        *check_rbac(docs),
        *check_hygiene(docs),
        *check_karpenter(docs),
        *check_network_policy_selectors(docs, pods),
        *check_isolation(docs, pods),
    ]


def _check_name(meta: Doc, tenant_id: str | None, warm: bool) -> tuple[list[str], bool]:
    """Pod naming carries the S3 scope (deploy/iam/README.md): a tenant pod is named
    exactly its tenant id, a warm pod `warm-...`. Returns (problems, claimed), where
    claimed means a warm pod relabelled for a tenant (it keeps its warm name)."""
    name = meta.get("name")
    generated = meta.get("generateName")
    warm_named = str(name if name is not None else generated or "").startswith(
        names.WARM_POD_PREFIX
    )
    problems = []
    if tenant_id is not None:
        try:
            validate_tenant_id(tenant_id)
        except InvalidTenantId:
            problems.append(f"pod: {names.LABEL_TENANT}={tenant_id!r} is not a valid tenant id")
    if tenant_id is None:
        if warm and not warm_named:
            problems.append(
                f"pod: warm pod name {name or generated!r} must start with "
                f"{names.WARM_POD_PREFIX!r} (the tenant S3 policy denies warm-* pods)"
            )
        return problems, False
    if warm_named and not warm:
        return problems, True
    if name != names.tenant_pod_name(tenant_id):
        problems.append(
            f"pod: name {name!r} must be {names.tenant_pod_name(tenant_id)!r} "
            "(the S3 scope is derived from the pod name)"
        )
    return problems, False


def _check_identity(pod: Doc) -> list[str]:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    problems = []
    namespace = meta.get("namespace")
    if namespace not in (None, names.TENANT_NAMESPACE):
        problems.append(f"pod: namespace must be {names.TENANT_NAMESPACE}, not {namespace!r}")
    for key, value in (
        (names.LABEL_APP, names.APP_OPENCLAW),
        (names.LABEL_MANAGED_BY, names.MANAGED_BY),
    ):
        if labels.get(key) != value:
            problems.append(f"pod: label {key}={value} is missing")
    tenant_id = labels.get(names.LABEL_TENANT)
    warm = labels.get(names.LABEL_WARM) == "true"
    if tenant_id is None and not warm:
        problems.append(f"pod: needs {names.LABEL_TENANT}=<id> or {names.LABEL_WARM}=true")
    if tenant_id is not None and warm:
        problems.append(f"pod: {names.LABEL_TENANT} and {names.LABEL_WARM}=true exclude each other")
    name_problems, claimed = _check_name(meta, tenant_id, warm)
    problems += name_problems
    if spec.get("runtimeClassName") != names.RUNTIME_CLASS:
        problems.append(f"pod: runtimeClassName must be {names.RUNTIME_CLASS}")
    # A claimed warm pod keeps the priority it was created with (pod specs are immutable).
    if claimed:
        allowed_priorities = {names.TENANT_PRIORITY_CLASS, names.WARM_PRIORITY_CLASS}
    elif tenant_id is None:
        allowed_priorities = {names.WARM_PRIORITY_CLASS}
    else:
        allowed_priorities = {names.TENANT_PRIORITY_CLASS}
    if spec.get("priorityClassName") not in allowed_priorities:
        problems.append(f"pod: priorityClassName must be {' or '.join(sorted(allowed_priorities))}")
    if spec.get("serviceAccountName") != names.TENANT_SERVICE_ACCOUNT:
        problems.append(f"pod: serviceAccountName must be {names.TENANT_SERVICE_ACCOUNT}")
    return problems


def _check_tenant_secrets(pod: Doc) -> list[str]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    spec = pod.get("spec") or {}
    tenant_id = labels.get(names.LABEL_TENANT)
    problems = []
    own_secret = names.tenant_secret_name(tenant_id) if tenant_id else None
    secret_names = {
        v["secret"]["secretName"] for v in spec.get("volumes") or [] if "secret" in v
    } | {
        e["valueFrom"]["secretKeyRef"]["name"]
        for c in inv.containers(spec)
        for e in c.get("env") or []
        if "secretKeyRef" in (e.get("valueFrom") or {})
    }
    for name in secret_names:
        if name.startswith(names.tenant_secret_name("")) and name != own_secret:
            problems.append(f"pod: mounts another tenant's Secret {name!r}")
    for container in inv.containers(spec):
        for env in container.get("env") or []:
            if "value" in env and _SECRET_LIKE.search(env["name"]):
                problems.append(
                    f"pod: container {container['name']} has {env['name']} as plain env; "
                    "secrets come from the tenant's Secret"
                )
    return problems


def check_runtime_pod(pod: Doc, rendered_docs: list[Doc]) -> list[str]:
    """Check a tenant or warm pod the daemon generates against a rendered overlay."""
    spec = pod.get("spec") or {}
    problems = check_schema(pod)
    problems += _check_identity(pod)
    problems += check_pod_spec_references(pod, spec, names.TENANT_NAMESPACE, rendered_docs)
    problems += _check_tenant_secrets(pod)
    account = inv.find(
        rendered_docs, "ServiceAccount", str(spec.get("serviceAccountName")), names.TENANT_NAMESPACE
    )
    if spec.get(
        "automountServiceAccountToken", (account or {}).get("automountServiceAccountToken")
    ):
        problems.append("pod: must not mount a Kubernetes API token")
    for container in inv.containers(spec):
        problems += check_container("pod", container, spec, hardened=False)
    problems += pod_fits_pool(spec, rendered_docs)
    # NetworkPolicy coverage, with a second tenant to prove tenants cannot meet.
    tenant_id = ((pod.get("metadata") or {}).get("labels") or {}).get(names.LABEL_TENANT)
    peer_id = "peer" if tenant_id != "peer" else "peer2"
    peer = inv.runtime_pod_stub(peer_id)
    meta = dict(pod.get("metadata") or {})
    # Warm pods may be created with generateName; give the one under check a stand-in name.
    meta.setdefault("name", f"{meta.get('generateName', names.WARM_POD_PREFIX)}under-check")
    meta["namespace"] = names.TENANT_NAMESPACE
    placed = {**pod, "metadata": meta}
    pods = inv.pod_endpoints(rendered_docs, [placed, peer])
    subject = next(
        p for p in pods if p.namespace == names.TENANT_NAMESPACE and p.name == meta["name"]
    )
    others: list[PodEndpoint] = [p for p in pods if p.name == peer["metadata"]["name"]]
    problems += tenant_pod_isolation(subject, others, rendered_docs, pods)
    return problems
