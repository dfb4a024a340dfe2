"""Unit tests of the NetworkPolicy evaluator's semantics (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.netpol import (
    IPEndpoint,
    PodEndpoint,
    connection_allowed,
    ip_in_block,
    policy_types,
    selector_matches,
)

Doc = dict[str, Any]
NAMESPACES = {
    "a": {"kubernetes.io/metadata.name": "a", "team": "x"},
    "b": {"kubernetes.io/metadata.name": "b"},
}
WEB = PodEndpoint("web", "a", {"app": "web"}, "10.0.0.1", {"http": (8080, "TCP")})
CLIENT_A = PodEndpoint("client", "a", {"app": "client"}, "10.0.0.2")
CLIENT_B = PodEndpoint("client", "b", {"app": "client"}, "10.0.0.3")


def policy(namespace: str, spec: Doc) -> Doc:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"a": "1"}, True),
        (None, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
    ],
)
def test_selector_semantics(selector: Doc | None, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_ip_block_except() -> None:
    block = {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}
    assert ip_in_block("8.8.8.8", block)
    assert not ip_in_block("10.1.2.3", block)


def test_policy_types_default() -> None:
    assert policy_types(policy("a", {"podSelector": {}})) == ["Ingress"]
    assert policy_types(policy("a", {"podSelector": {}, "egress": [{}]})) == ["Ingress", "Egress"]


def test_unselected_pods_are_open() -> None:
    assert connection_allowed(CLIENT_B, WEB, 1234, [], NAMESPACES)


def test_pod_selector_alone_means_same_namespace() -> None:
    policies = [
        policy(
            "a",
            {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}],
            },
        )
    ]
    assert connection_allowed(CLIENT_A, WEB, 80, policies, NAMESPACES)
    assert not connection_allowed(CLIENT_B, WEB, 80, policies, NAMESPACES)


def test_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    anded = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}},
        "podSelector": {"matchLabels": {"app": "client"}},
    }
    policies = [policy("a", {"podSelector": {}, "ingress": [{"from": [anded]}]})]
    assert connection_allowed(CLIENT_B, WEB, 80, policies, NAMESPACES)
    assert not connection_allowed(CLIENT_A, WEB, 80, policies, NAMESPACES)


def test_named_and_ranged_ports() -> None:
    policies = [
        policy(
            "a",
            {
                "podSelector": {},
                "ingress": [{"ports": [{"port": "http"}, {"port": 9000, "endPort": 9005}]}],
            },
        )
    ]
    assert connection_allowed(CLIENT_A, WEB, 8080, policies, NAMESPACES)
    assert connection_allowed(CLIENT_A, WEB, 9003, policies, NAMESPACES)
    assert not connection_allowed(CLIENT_A, WEB, 9006, policies, NAMESPACES)
    assert not connection_allowed(CLIENT_A, WEB, 8080, policies, NAMESPACES, protocol="UDP")


def test_egress_needs_a_rule_and_ingress_must_agree() -> None:
    deny_egress = policy(
        "a", {"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"]}
    )
    assert not connection_allowed(CLIENT_A, IPEndpoint("1.1.1.1"), 443, [deny_egress], NAMESPACES)
    allow_egress = policy(
        "a",
        {
            "podSelector": {"matchLabels": {"app": "client"}},
            "policyTypes": ["Egress"],
            "egress": [{}],
        },
    )
    deny_web = policy(
        "a", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}
    )
    assert connection_allowed(CLIENT_A, IPEndpoint("1.1.1.1"), 443, [allow_egress], NAMESPACES)
    assert not connection_allowed(CLIENT_A, WEB, 8080, [allow_egress, deny_web], NAMESPACES)
