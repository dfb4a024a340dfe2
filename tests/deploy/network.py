"""NetworkPolicy checks on a render: selectors select what they mean, and the
isolation the project promises holds (evaluated with netpol.py, not by reading YAML).

The tenants namespace is empty in a render (the daemon creates its pods at runtime),
so the checks add representative runtime pods (inventory.default_runtime_pods) or the
caller's real ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daemon.kube import names
from tests.deploy import inventory as inv
from tests.deploy.netpol import (
    IPEndpoint,
    PodEndpoint,
    connection_allowed,
    network_policies,
    selecting_policies,
    selector_matches,
)

Doc = dict[str, Any]

#: A public address (api.telegram.org) and a private one (something else in the VPC).
PUBLIC_HTTPS = IPEndpoint("149.154.167.220")
VPC_HOST = IPEndpoint("10.1.2.3")
POD_IDENTITY_AGENT = IPEndpoint("169.254.170.23")
IMDS = IPEndpoint("169.254.169.254")
#: A pod outside otm-system that wears the daemon's label: labels alone must not let it in.
IMPOSTOR = PodEndpoint(
    name="impostor",
    namespace="default",
    labels={names.LABEL_APP: names.APP_DAEMON},
    ip="10.0.200.1",
)
#: Some other pod inside otm-system (a debug shell, a future component).
NEIGHBOUR = PodEndpoint(
    name="debug-shell", namespace=names.DAEMON_NAMESPACE, labels={"run": "debug"}, ip="10.0.200.2"
)


def check_network_policy_selectors(docs: list[Doc], runtime_pods: Iterable[Doc]) -> list[str]:
    """Each policy selects at least one pod, and each pod/namespace peer matches one."""
    pods = inv.pod_endpoints(docs, runtime_pods)
    namespaces = inv.namespace_labels(docs)
    problems: list[str] = []
    for policy in network_policies(docs):
        where = inv.ident(policy)
        namespace = policy["metadata"].get("namespace", "")
        spec = policy.get("spec") or {}
        if not any(
            p.namespace == namespace and selector_matches(spec.get("podSelector"), p.labels)
            for p in pods
        ):
            problems.append(f"{where}: podSelector {spec.get('podSelector')} selects no pod")
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for index, rule in enumerate(spec.get(direction) or []):
                for peer in rule.get(peers_key) or []:
                    if "ipBlock" in peer:
                        continue
                    ns_selector = peer.get("namespaceSelector")
                    if ns_selector is not None and not any(
                        selector_matches(ns_selector, labels) for labels in namespaces.values()
                    ):
                        problems.append(
                            f"{where}: {direction}[{index}] namespaceSelector {ns_selector} "
                            "matches no namespace"
                        )
                        continue
                    if not any(
                        selector_matches(peer.get("podSelector"), p.labels)
                        and (
                            selector_matches(ns_selector, namespaces.get(p.namespace, {}))
                            if ns_selector is not None
                            else p.namespace == namespace
                        )
                        for p in pods
                    ):
                        problems.append(f"{where}: {direction}[{index}] peer {peer} matches no pod")
    return problems


def _pods_with(pods: list[PodEndpoint], namespace: str, app: str) -> list[PodEndpoint]:
    return [p for p in pods if p.namespace == namespace and p.labels.get(names.LABEL_APP) == app]


def _name(endpoint: PodEndpoint | IPEndpoint) -> str:
    if isinstance(endpoint, PodEndpoint):
        return f"{endpoint.namespace}/{endpoint.name}"
    return endpoint.ip


class _Expectations:
    """Collects 'X -> Y:port should be allowed/denied' results as problem strings."""

    def __init__(self, policies: list[Doc], namespaces: dict[str, dict[str, str]]) -> None:
        self.policies = policies
        self.namespaces = namespaces
        self.problems: list[str] = []

    def expect(
        self,
        src: PodEndpoint | IPEndpoint,
        dst: PodEndpoint | IPEndpoint,
        port: int,
        allowed: bool,
        protocol: str = "TCP",
    ) -> None:
        actual = connection_allowed(src, dst, port, self.policies, self.namespaces, protocol)
        if actual != allowed:
            verdict = "allowed" if actual else "denied"
            self.problems.append(
                f"isolation: {_name(src)} -> {_name(dst)}:{port}/{protocol} is {verdict}, "
                f"should be {'allowed' if allowed else 'denied'}"
            )


def tenant_pod_isolation(
    tenant: PodEndpoint, others: list[PodEndpoint], docs: list[Doc], pods: list[PodEndpoint]
) -> list[str]:
    """Everything the design promises about one tenant (or warm) pod's network."""
    policies = network_policies(docs)
    expectations = _Expectations(policies, inv.namespace_labels(docs))
    problems: list[str] = []
    for direction in ("Ingress", "Egress"):
        if not selecting_policies(tenant, policies, direction):
            problems.append(f"isolation: {_name(tenant)} is not {direction.lower()}-isolated")
    daemons = _pods_with(pods, names.DAEMON_NAMESPACE, names.APP_DAEMON)
    redis = _pods_with(pods, names.DAEMON_NAMESPACE, "otm-redis")
    if not daemons:
        problems.append(f"isolation: no daemon pods ({names.APP_DAEMON}) in the render")
    tenant_ports = (names.OPENCLAW_WEBHOOK_PORT, names.OPENCLAW_GATEWAY_PORT, names.WARM_BIND_PORT)
    for daemon in daemons:
        for port in tenant_ports:
            expectations.expect(daemon, tenant, port, allowed=True)
        expectations.expect(daemon, tenant, 22, allowed=False)
        for port in (names.DAEMON_ROUTER_PORT, names.DAEMON_ADMIN_PORT):
            expectations.expect(tenant, daemon, port, allowed=False)
        # The model gateway is the one daemon port a tenant reaches (its only way to a model).
        expectations.expect(tenant, daemon, names.DAEMON_MODEL_GATEWAY_PORT, allowed=True)
    for other in [*others, IMPOSTOR, NEIGHBOUR, *redis]:
        for port in tenant_ports:
            expectations.expect(other, tenant, port, allowed=False)
    for other in others:
        for port in tenant_ports:
            expectations.expect(tenant, other, port, allowed=False)
    for server in redis:
        expectations.expect(tenant, server, names.REDIS_PORT, allowed=False)
    for dns in (p for p in inv.EXTERNAL_PODS if p.labels.get("k8s-app") == "kube-dns"):
        expectations.expect(tenant, dns, 53, allowed=True, protocol="UDP")
        expectations.expect(tenant, dns, 53, allowed=True, protocol="TCP")
    expectations.expect(tenant, POD_IDENTITY_AGENT, 80, allowed=True)
    # Never the node's instance metadata (its role's credentials), on any port.
    for port in (80, 443):
        expectations.expect(tenant, IMDS, port, allowed=False)
    expectations.expect(tenant, PUBLIC_HTTPS, 443, allowed=True)
    expectations.expect(tenant, PUBLIC_HTTPS, 80, allowed=False)
    expectations.expect(tenant, VPC_HOST, 443, allowed=False)
    return problems + expectations.problems


def daemon_port_isolation(docs: list[Doc], pods: list[PodEndpoint]) -> list[str]:
    """Each daemon port is open to who needs it only: the router to anyone, the admin
    port (unauthenticated /metrics naming tenants) to Prometheus, the model gateway to
    tenant pods."""
    expectations = _Expectations(network_policies(docs), inv.namespace_labels(docs))
    daemons = _pods_with(pods, names.DAEMON_NAMESPACE, names.APP_DAEMON)
    scrapers = [p for p in pods if p.namespace in _scraper_namespaces(docs)]
    problems = [] if scrapers else ["isolation: no Prometheus pod to check the admin port with"]
    for daemon in daemons:
        if not selecting_policies(daemon, network_policies(docs), "Ingress"):
            problems.append(f"isolation: {_name(daemon)} is not ingress-isolated")
        for outsider in (PUBLIC_HTTPS, VPC_HOST, IMPOSTOR, NEIGHBOUR):
            expectations.expect(outsider, daemon, names.DAEMON_ROUTER_PORT, allowed=True)
            expectations.expect(outsider, daemon, names.DAEMON_ADMIN_PORT, allowed=False)
            expectations.expect(outsider, daemon, names.DAEMON_MODEL_GATEWAY_PORT, allowed=False)
        for scraper in scrapers:
            expectations.expect(scraper, daemon, names.DAEMON_ADMIN_PORT, allowed=True)
            expectations.expect(scraper, daemon, names.DAEMON_MODEL_GATEWAY_PORT, allowed=False)
        # The ALB (an address in the VPC, not a pod) must pass its own health check.
        for port in _alb_health_check_ports(docs):
            expectations.expect(VPC_HOST, daemon, port, allowed=True)
    return problems + expectations.problems


def _alb_health_check_ports(docs: list[Doc]) -> set[int]:
    ports = set()
    for ingress in inv.of_kind(docs, "Ingress"):
        annotations = ingress["metadata"].get("annotations") or {}
        port = annotations.get("alb.ingress.kubernetes.io/healthcheck-port", "traffic-port")
        ports.add(names.DAEMON_ROUTER_PORT if port == "traffic-port" else int(port))
    return ports


def _scraper_namespaces(docs: list[Doc]) -> set[str]:
    return {
        ns
        for ns, labels in inv.namespace_labels(docs).items()
        if labels.get(inv.METRICS_SCRAPER_LABEL) == "true"
    }


def check_isolation(docs: list[Doc], runtime_pods: Iterable[Doc]) -> list[str]:
    """The promised isolation holds for every tenant/warm pod and for Redis."""
    pods = inv.pod_endpoints(docs, runtime_pods)
    openclaw = _pods_with(pods, names.TENANT_NAMESPACE, names.APP_OPENCLAW)
    problems: list[str] = []
    if not openclaw:
        problems.append("isolation: no tenant pods to check (pass runtime pods)")
    for tenant in openclaw:
        others = [p for p in openclaw if p is not tenant]
        problems += tenant_pod_isolation(tenant, others, docs, pods)
    expectations = _Expectations(network_policies(docs), inv.namespace_labels(docs))
    redis = _pods_with(pods, names.DAEMON_NAMESPACE, "otm-redis")
    if not redis:
        problems.append("isolation: no Redis pods (otm-redis) in the render")
    for server in redis:
        for daemon in _pods_with(pods, names.DAEMON_NAMESPACE, names.APP_DAEMON):
            expectations.expect(daemon, server, names.REDIS_PORT, allowed=True)
        for other in (IMPOSTOR, NEIGHBOUR):
            expectations.expect(other, server, names.REDIS_PORT, allowed=False)
    problems += daemon_port_isolation(docs, pods)
    return problems + expectations.problems
