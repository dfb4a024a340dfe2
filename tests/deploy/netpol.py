"""A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics), pure functions.

It answers "may this endpoint open a connection to that one on this port?" for a set
of policies, so tests can state isolation as intent (daemon -> tenant allowed, tenant ->
tenant denied) instead of comparing YAML. Semantics follow the API reference:

- A pod is isolated for a direction when any policy in its namespace selects it and
  lists that direction in policyTypes (Ingress is implied; Egress is implied when the
  policy has egress rules). A non-isolated direction allows everything.
- An isolated direction allows a connection when any selecting policy has a rule whose
  peers match (no peers = everyone) and whose ports match (no ports = every port).
- Peers: podSelector alone = pods in the policy's namespace; namespaceSelector alone =
  every pod in matching namespaces; both = matching pods in matching namespaces;
  ipBlock = addresses in cidr and not in except. Pod addresses are matched against
  ipBlocks too (as the AWS VPC CNI does: pod IPs are VPC addresses).
- Named ports resolve against the destination pod's container ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]


@dataclass(frozen=True)
class PodEndpoint:
    """A pod as the evaluator sees it: where it lives, its labels, address and ports."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ip: str
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class IPEndpoint:
    """Something outside the cluster's pods (a public host, a link-local agent)."""

    ip: str


Endpoint = PodEndpoint | IPEndpoint


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def ip_in_block(ip: str, block: Mapping[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])


def policy_types(policy: Doc) -> list[str]:
    spec = policy.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return list(declared)
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def network_policies(docs: Iterable[Doc]) -> list[Doc]:
    return [d for d in docs if d.get("kind") == "NetworkPolicy"]


def selecting_policies(pod: PodEndpoint, policies: Iterable[Doc], direction: str) -> list[Doc]:
    """Policies in the pod's namespace that select it and isolate it for `direction`."""
    return [
        p
        for p in policies
        if p["metadata"].get("namespace") == pod.namespace
        and direction in policy_types(p)
        and selector_matches((p.get("spec") or {}).get("podSelector"), pod.labels)
    ]


def peer_matches(
    peer: Mapping[str, Any],
    policy_namespace: str,
    other: Endpoint,
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> bool:
    if "ipBlock" in peer:
        return ip_in_block(other.ip, peer["ipBlock"])
    if not isinstance(other, PodEndpoint):
        return False
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        if other.namespace != policy_namespace:
            return False
    elif not selector_matches(ns_selector, namespace_labels.get(other.namespace, {})):
        return False
    return selector_matches(peer.get("podSelector"), other.labels)


def port_matches(
    rule_ports: list[Mapping[str, Any]] | None, dst: Endpoint, port: int, protocol: str
) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if not isinstance(dst, PodEndpoint) or wanted not in dst.named_ports:
                continue
            wanted_port, wanted_protocol = dst.named_ports[wanted]
            if wanted_protocol == protocol and wanted_port == port:
                return True
            continue
        end = entry.get("endPort", wanted)
        if wanted <= port <= end:
            return True
    return False


def _direction_allows(
    subject: PodEndpoint,
    other: Endpoint,
    dst: Endpoint,
    port: int,
    protocol: str,
    policies: list[Doc],
    namespace_labels: Mapping[str, Mapping[str, str]],
    direction: str,
) -> bool:
    selecting = selecting_policies(subject, policies, direction)
    if not selecting:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in (policy.get("spec") or {}).get(rules_key) or []:
            peers = rule.get(peers_key)
            if peers and not any(
                peer_matches(peer, subject.namespace, other, namespace_labels) for peer in peers
            ):
                continue
            if port_matches(rule.get("ports"), dst, port, protocol):
                return True
    return False


def connection_allowed(
    src: Endpoint,
    dst: Endpoint,
    port: int,
    policies: list[Doc],
    namespace_labels: Mapping[str, Mapping[str, str]],
    protocol: str = "TCP",
) -> bool:
    """True if src's egress and dst's ingress policies both admit the connection."""
    if isinstance(src, PodEndpoint) and not _direction_allows(
        src, dst, dst, port, protocol, policies, namespace_labels, "Egress"
    ):
        return False
    return not (
        isinstance(dst, PodEndpoint)
        and not _direction_allows(
            dst, src, dst, port, protocol, policies, namespace_labels, "Ingress"
        )
    )
