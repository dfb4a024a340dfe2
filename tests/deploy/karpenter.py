"""Structural checks for the Karpenter CRDs (no JSON schema ships for them), and the fit
between the Kata RuntimeClass and the metal NodePool. Pure functions over dicts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

from daemon.kube import names
from tests.deploy import inventory as inv

Doc = dict[str, Any]

NODEPOOL_API = "karpenter.sh/v1"
NODECLASS_API = "karpenter.k8s.aws/v1"
_DURATION = re.compile(r"^(Never|([0-9]+(\.[0-9]+)?(s|m|h))+)$")
_OPERATORS = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gte", "Lte"}
_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}
_NODEPOOL_SPEC_KEYS = {"template", "disruption", "limits", "weight", "replicas"}
_NODEPOOL_TEMPLATE_SPEC_KEYS = {
    "nodeClassRef",
    "taints",
    "startupTaints",
    "requirements",
    "expireAfter",
    "terminationGracePeriod",
}
_NODECLASS_SPEC_KEYS = {
    "role",
    "instanceProfile",
    "amiSelectorTerms",
    "amiFamily",
    "subnetSelectorTerms",
    "securityGroupSelectorTerms",
    "capacityReservationSelectorTerms",
    "metadataOptions",
    "blockDeviceMappings",
    "instanceStorePolicy",
    "kubelet",
    "tags",
    "userData",
    "associatePublicIPAddress",
    "detailedMonitoring",
}
_BUDGET_KEYS = {"nodes", "reasons", "schedule", "duration"}
_BUDGET_REASONS = {"Underutilized", "Empty", "Drifted"}
_PINNED_ALIAS = re.compile(r"^(al2023|al2|bottlerocket|windows2019|windows2022)@v[0-9]{8}$")
_SELECTOR_TERM_KEYS = {"tags", "id", "name", "alias", "owner", "ssmParameter"}


def tolerates(tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """core/v1 Toleration semantics."""
    for toleration in tolerations:
        operator = toleration.get("operator", "Equal")
        key = toleration.get("key")
        if key and key != taint["key"]:
            continue
        if not key and operator != "Exists":
            continue
        if operator == "Equal" and toleration.get("value", "") != taint.get("value", ""):
            continue
        effect = toleration.get("effect")
        if effect and effect != taint["effect"]:
            continue
        return True
    return False


def _check_selector_terms(where: str, field: str, terms: Any) -> list[str]:
    if not isinstance(terms, list) or not terms:
        return [f"{where}: spec.{field} must be a non-empty list"]
    problems = []
    for term in terms:
        if not isinstance(term, dict) or not term or set(term) - _SELECTOR_TERM_KEYS:
            problems.append(f"{where}: spec.{field} has a malformed term {term!r}")
    return problems


def _check_kind(doc: Doc, api: str, spec_keys: Set[str]) -> tuple[str, Doc, list[str]]:
    """(where, spec, problems): a Karpenter object's apiVersion and top-level spec fields."""
    where = inv.ident(doc)
    problems: list[str] = []
    if doc.get("apiVersion") != api:
        problems.append(f"{where}: apiVersion must be {api}")
    spec = doc.get("spec") or {}
    problems += [f"{where}: unknown field spec.{k}" for k in set(spec) - spec_keys]
    return where, spec, problems


def _check_nodepool(pool: Doc, docs: list[Doc]) -> list[str]:
    where, spec, problems = _check_kind(pool, NODEPOOL_API, _NODEPOOL_SPEC_KEYS)
    template = spec.get("template") or {}
    template_spec = template.get("spec") or {}
    problems += [
        f"{where}: unknown field spec.template.spec.{k}"
        for k in set(template_spec) - _NODEPOOL_TEMPLATE_SPEC_KEYS
    ]
    ref = template_spec.get("nodeClassRef") or {}
    if ref.get("group") != "karpenter.k8s.aws" or ref.get("kind") != "EC2NodeClass":
        problems.append(f"{where}: nodeClassRef must name a karpenter.k8s.aws EC2NodeClass")
    requirements = template_spec.get("requirements")
    if not isinstance(requirements, list) or not requirements:
        problems.append(f"{where}: spec.template.spec.requirements must be a non-empty list")
        requirements = []
    by_key: dict[str, Mapping[str, Any]] = {}
    for requirement in requirements:
        operator = requirement.get("operator")
        values = requirement.get("values") or []
        if not isinstance(requirement.get("key"), str) or operator not in _OPERATORS:
            problems.append(f"{where}: malformed requirement {requirement!r}")
            continue
        if not all(isinstance(v, str) for v in values):
            problems.append(f"{where}: requirement {requirement['key']} values must be strings")
        if operator in {"In", "NotIn"} and not values:
            problems.append(f"{where}: requirement {requirement['key']} needs values")
        if operator in {"Gt", "Lt", "Gte", "Lte"} and (
            len(values) != 1 or not str(values[0]).isdigit()
        ):
            problems.append(f"{where}: requirement {requirement['key']} needs one integer value")
        by_key[requirement["key"]] = requirement
    size = by_key.get("karpenter.k8s.aws/instance-size")
    if not size or size.get("operator") != "In" or size.get("values") != ["metal"]:
        problems.append(f"{where}: Kata needs bare metal: instance-size must be In [metal]")
    for taint in template_spec.get("taints") or []:
        if not isinstance(taint.get("key"), str) or taint.get("effect") not in _EFFECTS:
            problems.append(f"{where}: malformed taint {taint!r}")
    if not template_spec.get("taints"):
        problems.append(f"{where}: metal nodes need a taint so only Kata pods land there")
    for taint in template_spec.get("startupTaints") or []:
        if not isinstance(taint.get("key"), str) or taint.get("effect") not in _EFFECTS:
            problems.append(f"{where}: malformed startup taint {taint!r}")
    if not template_spec.get("startupTaints"):
        problems.append(
            f"{where}: metal nodes need a startupTaint that kata-deploy removes once the "
            "runtime is installed (the kata label is on the node from the start)"
        )
    for field, value in (
        ("spec.template.spec.expireAfter", template_spec.get("expireAfter")),
        (
            "spec.template.spec.terminationGracePeriod",
            template_spec.get("terminationGracePeriod"),
        ),
        (
            "spec.disruption.consolidateAfter",
            (spec.get("disruption") or {}).get("consolidateAfter"),
        ),
    ):
        if value is not None and not _DURATION.match(str(value)):
            problems.append(f"{where}: {field} {value!r} is not a duration")
    disruption = spec.get("disruption") or {}
    policy = disruption.get("consolidationPolicy")
    if policy not in (None, "WhenEmpty", "WhenEmptyOrUnderutilized"):
        problems.append(f"{where}: unknown consolidationPolicy {policy!r}")
    problems += _check_budgets(where, disruption.get("budgets"))
    if template_spec.get("expireAfter") not in (None, "Never") and not template_spec.get(
        "terminationGracePeriod"
    ):
        problems.append(
            f"{where}: expiring nodes need a terminationGracePeriod (tenant pods are "
            "do-not-disrupt, so an expired node would otherwise drain for ever)"
        )
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not all(isinstance(v, str) for v in labels.values()):
        problems.append(f"{where}: template labels must be strings")
    return problems


def _check_budgets(where: str, budgets: Any) -> list[str]:
    """Karpenter's defaults let 10% of nodes go at once for any reason; a metal pool must
    roll drift (a new AMI) one node at a time."""
    if not isinstance(budgets, list) or not budgets:
        return [f"{where}: spec.disruption.budgets must limit disruption (drift: one node)"]
    problems = []
    for budget in budgets:
        if not isinstance(budget, dict) or set(budget) - _BUDGET_KEYS or "nodes" not in budget:
            problems.append(f"{where}: malformed disruption budget {budget!r}")
            continue
        if set(budget.get("reasons") or []) - _BUDGET_REASONS:
            problems.append(f"{where}: unknown disruption reasons in {budget!r}")
    drift_limits = [
        str(b.get("nodes"))
        for b in budgets
        if isinstance(b, dict) and "Drifted" in (b.get("reasons") or ["Drifted"])
    ]
    if not any(limit.isdigit() and int(limit) <= 1 for limit in drift_limits):
        problems.append(f"{where}: no budget limits drift to one node at a time")
    return problems


def _check_nodeclass(node_class: Doc) -> list[str]:
    where, spec, problems = _check_kind(node_class, NODECLASS_API, _NODECLASS_SPEC_KEYS)
    if ("role" in spec) == ("instanceProfile" in spec):
        problems.append(f"{where}: exactly one of spec.role and spec.instanceProfile")
    for field in ("amiSelectorTerms", "subnetSelectorTerms", "securityGroupSelectorTerms"):
        problems += _check_selector_terms(where, field, spec.get(field))
    for term in spec.get("amiSelectorTerms") or []:
        alias = term.get("alias") if isinstance(term, dict) else None
        if alias is not None and not _PINNED_ALIAS.match(str(alias)):
            problems.append(
                f"{where}: AMI alias {alias!r} is not pinned to a dated release "
                "(al2023@vYYYYMMDD): @latest drifts every node when AWS publishes an AMI"
            )
    metadata = spec.get("metadataOptions") or {}
    if metadata.get("httpTokens") != "required" or metadata.get("httpPutResponseHopLimit") != 1:
        problems.append(
            f"{where}: metadataOptions must require IMDSv2 with hop limit 1 "
            "(pods must not reach the node role's credentials)"
        )
    for mapping in spec.get("blockDeviceMappings") or []:
        ebs = mapping.get("ebs") or {}
        if not mapping.get("deviceName") or not ebs.get("encrypted"):
            problems.append(f"{where}: block device {mapping!r} must be named and encrypted")
    return problems


def _check_runtimeclass_fit(docs: list[Doc], pools: list[Doc]) -> list[str]:
    """Pods of the Kata RuntimeClass can land on the metal pool; other pods cannot."""
    runtime_class = inv.find(docs, "RuntimeClass", names.RUNTIME_CLASS)
    if runtime_class is None or not pools:
        return []
    scheduling = runtime_class.get("scheduling") or {}
    node_selector = scheduling.get("nodeSelector") or {}
    tolerations = scheduling.get("tolerations") or []
    problems: list[str] = []
    for pool in pools:
        where = inv.ident(pool)
        template = pool["spec"]["template"]
        labels = (template.get("metadata") or {}).get("labels") or {}
        for key, value in node_selector.items():
            if labels.get(key) != value:
                problems.append(
                    f"{where}: nodes lack label {key}={value} that RuntimeClass "
                    f"{names.RUNTIME_CLASS} selects, so Karpenter never provisions for Kata pods"
                )
        for taint in template["spec"].get("taints") or []:
            if not tolerates(tolerations, taint):
                problems.append(
                    f"{where}: RuntimeClass {names.RUNTIME_CLASS} does not tolerate taint {taint}"
                )
            for doc in docs:
                pod = inv.pod_template(doc)
                if pod is not None and tolerates(pod[1].get("tolerations") or [], taint):
                    problems.append(f"{inv.ident(doc)}: tolerates the metal taint {taint}")
    return problems


def check_karpenter(docs: list[Doc]) -> list[str]:
    pools = inv.of_kind(docs, "NodePool")
    problems: list[str] = []
    for pool in pools:
        problems += _check_nodepool(pool, docs)
    for node_class in inv.of_kind(docs, "EC2NodeClass"):
        problems += _check_nodeclass(node_class)
    return problems + _check_runtimeclass_fit(docs, pools)


def pod_fits_pool(spec: Mapping[str, Any], docs: list[Doc]) -> list[str]:
    """Could a pod with this spec (after RuntimeClass admission) run on a metal pool?"""
    pools = inv.of_kind(docs, "NodePool")
    if not pools:
        return []
    runtime_class = inv.find(docs, "RuntimeClass", str(spec.get("runtimeClassName")))
    scheduling = (runtime_class or {}).get("scheduling") or {}
    node_selector = {**(spec.get("nodeSelector") or {}), **(scheduling.get("nodeSelector") or {})}
    tolerations = [*(spec.get("tolerations") or []), *(scheduling.get("tolerations") or [])]
    for pool in pools:
        template = pool["spec"]["template"]
        labels = (template.get("metadata") or {}).get("labels") or {}
        taints = template["spec"].get("taints") or []
        if all(labels.get(k) == v for k, v in node_selector.items()) and all(
            tolerates(tolerations, t) for t in taints if t["effect"] != "PreferNoSchedule"
        ):
            return []
    return ["scheduling: the pod fits no NodePool (labels/taints) in the render"]
