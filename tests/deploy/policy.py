"""Project rules for a render: the daemon's names and settings, RBAC least privilege,
container hygiene, durable Redis. Pure functions over rendered dicts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from daemon.kube import names
from tests.deploy import inventory as inv

Doc = dict[str, Any]

ADMIN_TOKEN_SECRET = "otm-admin-token"
PLACEHOLDER = "set-from-site.env"
REQUIRED_CONFIG = {
    "OTM_RUNTIME": "kubernetes",
    "OTM_REGISTRY": "dynamodb",
    "OTM_STATE_STORE": "s3",
    "OTM_REDIS_URL": None,
    "OTM_S3_BUCKET": None,
    "OTM_DYNAMODB_TABLE": "tenants",
    "OTM_TENANT_NAMESPACE": names.TENANT_NAMESPACE,
    "OTM_DAEMON_NAMESPACE": names.DAEMON_NAMESPACE,
    "OTM_PUBLIC_BASE_URL": None,
    "OTM_LOG_FORMAT": None,
    "AWS_REGION": None,
}

#: namespace -> (apiGroup, resource) -> verbs the daemon may hold there. Nothing else.
ALLOWED_DAEMON_RBAC: dict[str, dict[tuple[str, str], frozenset[str]]] = {
    names.TENANT_NAMESPACE: {
        ("", "pods"): frozenset({"get", "list", "watch", "create", "patch", "delete"}),
        ("", "pods/log"): frozenset({"get"}),
        # By name only: list/watch would hand every tenant's bot token to whoever holds
        # the daemon's token.
        ("", "secrets"): frozenset({"get", "create", "update", "patch", "delete"}),
    },
    names.DAEMON_NAMESPACE: {
        ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update"}),
    },
}
#: (apiGroup, resource) -> verbs a ClusterRole may hold. Only reading a Node by name, to
#: tell a pod stranded on a lost node: no list/watch (every node's addresses and
#: labels), nothing else cluster-wide.
ALLOWED_DAEMON_CLUSTER_RBAC: dict[tuple[str, str], frozenset[str]] = {
    ("", "nodes"): frozenset({"get"}),
}
#: What the daemon must be able to do: (namespace or None for cluster-scoped, group,
#: resource, verb, resource name).
REQUIRED_DAEMON_PERMISSIONS: list[tuple[str | None, str, str, str, str | None]] = [
    *(
        (names.TENANT_NAMESPACE, "", "pods", verb, None)
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    ),
    (names.TENANT_NAMESPACE, "", "pods/log", "get", None),
    *(
        (names.TENANT_NAMESPACE, "", "secrets", verb, None)
        for verb in ("get", "create", "update", "patch", "delete")
    ),
    (names.DAEMON_NAMESPACE, "coordination.k8s.io", "leases", "create", None),
    (names.DAEMON_NAMESPACE, "coordination.k8s.io", "leases", "get", names.LEADER_LEASE),
    (names.DAEMON_NAMESPACE, "coordination.k8s.io", "leases", "update", names.LEADER_LEASE),
    (None, "", "nodes", "get", None),
]


def _binds(binding: Doc, sa_namespace: str, sa_name: str) -> bool:
    namespace = binding["metadata"].get("namespace", "")
    return any(
        s.get("kind") == "ServiceAccount"
        and s.get("name") == sa_name
        and (s.get("namespace") or namespace) == sa_namespace
        for s in binding.get("subjects") or []
    )


def _rules_for(
    docs: list[Doc], sa_namespace: str, sa_name: str
) -> Iterator[tuple[str | None, Doc]]:
    """(namespace, rule) of every rule bound to a ServiceAccount; namespace None: from a
    ClusterRoleBinding, so everywhere, cluster-scoped resources included."""
    for binding in inv.of_kind(docs, "RoleBinding") + inv.of_kind(docs, "ClusterRoleBinding"):
        if not _binds(binding, sa_namespace, sa_name):
            continue
        ref = binding["roleRef"]
        cluster_wide = binding["kind"] == "ClusterRoleBinding"
        namespace = None if cluster_wide else binding["metadata"].get("namespace", "")
        role = inv.find(
            docs, ref["kind"], ref["name"], None if ref["kind"] != "Role" else namespace
        )
        for rule in (role or {}).get("rules") or []:
            yield namespace, rule


def can(
    docs: list[Doc],
    subject: tuple[str, str],
    namespace: str | None,
    group: str,
    resource: str,
    verb: str,
    name: str | None = None,
) -> bool:
    """RBAC authorization for a ServiceAccount (namespace, name) from rendered Roles and
    ClusterRoles; ``namespace`` None asks for a cluster-scoped resource."""
    for rule_namespace, rule in _rules_for(docs, *subject):
        if rule_namespace is not None and rule_namespace != namespace:
            continue
        names_allowed = rule.get("resourceNames") or []
        if (
            group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule.get("verbs", [])
            and (not names_allowed or (name is not None and name in names_allowed))
        ):
            return True
    return False


def _rule_problems(
    where: str, rule: Doc, allowed: dict[tuple[str, str], frozenset[str]], scope: str
) -> list[str]:
    """What a rule grants beyond ``allowed`` (a wildcard is always beyond)."""
    groups, resources, verbs = (
        rule.get("apiGroups", []),
        rule.get("resources", []),
        set(rule.get("verbs", [])),
    )
    if rule.get("nonResourceURLs"):
        return [f"{where}: nonResourceURLs {rule['nonResourceURLs']} are not allowed"]
    if "*" in groups or "*" in resources or "*" in verbs:
        return [f"{where}: wildcard rule {rule}"]
    problems = []
    for group in groups:
        for resource in resources:
            granted = allowed.get((group, resource))
            if granted is None:
                problems.append(f"{where}: {group or 'core'}/{resource} is not allowed{scope}")
            elif verbs - granted:
                problems.append(
                    f"{where}: verbs {sorted(verbs - granted)} on {resource} are not allowed{scope}"
                )
    return problems


def _subject_problems(binding: Doc) -> list[str]:
    """Only the daemon's ServiceAccount is bound to anything."""
    problems = []
    binding_namespace = binding["metadata"].get("namespace")
    for subject in binding.get("subjects") or []:
        namespace = subject.get("namespace") or binding_namespace
        if (subject.get("kind"), subject.get("name"), namespace) != (
            "ServiceAccount",
            names.DAEMON_SERVICE_ACCOUNT,
            names.DAEMON_NAMESPACE,
        ):
            who = f"{namespace}/{subject.get('name')}" if namespace else subject.get("name")
            problems.append(
                f"{inv.ident(binding)}: only {names.DAEMON_NAMESPACE}/"
                f"{names.DAEMON_SERVICE_ACCOUNT} gets API access, not {subject.get('kind')} {who}"
            )
    return problems


def check_rbac(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for role in inv.of_kind(docs, "Role"):
        namespace = role["metadata"].get("namespace", "")
        allowed = ALLOWED_DAEMON_RBAC.get(namespace)
        if allowed is None:
            problems.append(f"{inv.ident(role)}: no Role belongs in namespace {namespace!r}")
            continue
        for rule in role.get("rules") or []:
            problems += _rule_problems(inv.ident(role), rule, allowed, "")
    # Cluster-wide: reading Nodes only (ALLOWED_DAEMON_CLUSTER_RBAC). An aggregated
    # ClusterRole's rules are filled in by the cluster, so they cannot be checked here.
    for cluster_role in inv.of_kind(docs, "ClusterRole"):
        where = inv.ident(cluster_role)
        if cluster_role.get("aggregationRule"):
            problems.append(f"{where}: an aggregated ClusterRole is not allowed")
        for rule in cluster_role.get("rules") or []:
            problems += _rule_problems(where, rule, ALLOWED_DAEMON_CLUSTER_RBAC, " cluster-wide")
    for binding in inv.of_kind(docs, "RoleBinding") + inv.of_kind(docs, "ClusterRoleBinding"):
        problems += _subject_problems(binding)
    daemon = (names.DAEMON_NAMESPACE, names.DAEMON_SERVICE_ACCOUNT)
    for namespace, group, resource, verb, name in REQUIRED_DAEMON_PERMISSIONS:
        if not can(docs, daemon, namespace, group, resource, verb, name):
            problems.append(
                f"rbac: {names.DAEMON_SERVICE_ACCOUNT} cannot {verb} {resource}"
                f"{'/' + name if name else ''} {'in ' + namespace if namespace else 'cluster-wide'}"
            )
    tenant_sa = inv.find(
        docs, "ServiceAccount", names.TENANT_SERVICE_ACCOUNT, names.TENANT_NAMESPACE
    )
    if tenant_sa is not None and tenant_sa.get("automountServiceAccountToken") is not False:
        problems.append(f"{inv.ident(tenant_sa)}: must not automount an API token")
    return problems


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


_PINNED_IMAGE = re.compile(
    r"^[^:@\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


def check_container(owner: str, container: Doc, pod_spec: Doc, *, hardened: bool) -> list[str]:
    where = f"{owner} container {container.get('name')}"
    problems: list[str] = []
    image = str(container.get("image", ""))
    if (
        not _PINNED_IMAGE.match(image)
        or ":" not in image.rsplit("/", 1)[-1]
        or image.endswith(":latest")
    ):
        problems.append(f"{where}: image {image!r} is not pinned to a version")
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if "cpu" not in requests or "memory" not in requests or "memory" not in limits:
        problems.append(f"{where}: needs cpu/memory requests and a memory limit")
    if not hardened:
        return problems
    pod_context = pod_spec.get("securityContext") or {}
    context = container.get("securityContext") or {}
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        problems.append(f"{where}: must run as non-root")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: needs a read-only root filesystem")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: must set allowPrivilegeEscalation: false")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: must drop ALL capabilities")
    return problems


def check_hygiene(docs: list[Doc]) -> list[str]:
    problems = []
    for doc in docs:
        if any(PLACEHOLDER in s for s in _strings(doc)):
            problems.append(f"{inv.ident(doc)}: still holds a {PLACEHOLDER!r} placeholder")
        template = inv.pod_template(doc)
        if template is None:
            continue
        spec = template[1]
        for container in inv.containers(spec):
            problems += check_container(inv.ident(doc), container, spec, hardened=True)
    return problems


def _check_daemon(docs: list[Doc]) -> list[str]:
    deployment = inv.find(docs, "Deployment", names.APP_DAEMON, names.DAEMON_NAMESPACE)
    if deployment is None:
        return [f"names: Deployment {names.DAEMON_NAMESPACE}/{names.APP_DAEMON} is missing"]
    where = inv.ident(deployment)
    template = deployment["spec"]["template"]
    spec = template["spec"]
    problems = []
    if (template["metadata"].get("labels") or {}).get(names.LABEL_APP) != names.APP_DAEMON:
        problems.append(f"{where}: pods must be labelled {names.LABEL_APP}={names.APP_DAEMON}")
    if spec.get("serviceAccountName") != names.DAEMON_SERVICE_ACCOUNT:
        problems.append(f"{where}: must run as {names.DAEMON_SERVICE_ACCOUNT}")
    container = spec["containers"][0]
    if container.get("command") != ["otm", "daemon"]:
        problems.append(f"{where}: command must be ['otm', 'daemon']")
    ports = {p["containerPort"] for p in container.get("ports") or []}
    for port in (names.DAEMON_ROUTER_PORT, names.DAEMON_ADMIN_PORT):
        if port not in ports:
            problems.append(f"{where}: container port {port} is missing")
    admin_names = {
        p["name"]
        for p in container.get("ports") or []
        if p["containerPort"] == names.DAEMON_ADMIN_PORT
    }
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        http = (container.get(probe) or {}).get("httpGet") or {}
        if http.get("path") != path or (
            http.get("port") not in admin_names and http.get("port") != names.DAEMON_ADMIN_PORT
        ):
            problems.append(f"{where}: {probe} must be GET {path} on the admin port")
    if {"configMapRef": {"name": names.DAEMON_CONFIGMAP}} not in (container.get("envFrom") or []):
        problems.append(f"{where}: must take its environment from {names.DAEMON_CONFIGMAP}")
    secret_names = {
        (e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name")
        for e in container.get("env") or []
    }
    if ADMIN_TOKEN_SECRET not in secret_names:
        problems.append(f"{where}: admin token must come from Secret {ADMIN_TOKEN_SECRET}")
    return problems


def _check_config(docs: list[Doc]) -> list[str]:
    config = inv.find(docs, "ConfigMap", names.DAEMON_CONFIGMAP, names.DAEMON_NAMESPACE)
    if config is None:
        return [f"names: ConfigMap {names.DAEMON_CONFIGMAP} is missing"]
    data = config.get("data") or {}
    where = inv.ident(config)
    problems = [f"{where}: key {k} is missing" for k in REQUIRED_CONFIG if k not in data]
    problems += [
        f"{where}: {k} must be {v!r}, not {data[k]!r}"
        for k, v in REQUIRED_CONFIG.items()
        if v is not None and k in data and data[k] != v
    ]
    redis_url = urlparse(data.get("OTM_REDIS_URL", ""))
    if (redis_url.scheme, redis_url.hostname, redis_url.port) != (
        "redis",
        names.REDIS_SERVICE,
        names.REDIS_PORT,
    ):
        problems.append(
            f"{where}: OTM_REDIS_URL must point at {names.REDIS_SERVICE}:{names.REDIS_PORT}"
        )
    if urlparse(data.get("OTM_PUBLIC_BASE_URL", "")).scheme != "https":
        problems.append(f"{where}: OTM_PUBLIC_BASE_URL must be https (Telegram requires it)")
    return problems


def _check_redis(docs: list[Doc]) -> list[str]:
    service = inv.find(docs, "Service", names.REDIS_SERVICE, names.DAEMON_NAMESPACE)
    if service is None or names.REDIS_PORT not in {p["port"] for p in service["spec"]["ports"]}:
        return [f"names: Service {names.REDIS_SERVICE} on port {names.REDIS_PORT} is missing"]
    statefulset = inv.find(docs, "StatefulSet", names.REDIS_SERVICE, names.DAEMON_NAMESPACE)
    if statefulset is None:
        return [f"redis: StatefulSet {names.REDIS_SERVICE} is missing"]
    claims = {c["metadata"]["name"] for c in statefulset["spec"].get("volumeClaimTemplates") or []}
    mounts = {
        m["name"]: m["mountPath"]
        for c in statefulset["spec"]["template"]["spec"]["containers"]
        for m in c.get("volumeMounts") or []
    }
    config_text = "\n".join(
        str(v) for d in inv.of_kind(docs, "ConfigMap") for v in (d.get("data") or {}).values()
    )
    problems = []
    data_dir = re.search(r"^dir (\S+)$", config_text, re.M)
    if not data_dir or not any(mounts.get(c) == data_dir.group(1) for c in claims):
        problems.append("redis: the AOF directory must be on a PersistentVolumeClaim")
    for line in ("appendonly yes", "maxmemory-policy noeviction"):
        if not re.search(rf"^{line}$", config_text, re.M):
            problems.append(f"redis: config must say {line!r} (buffers must survive and stay)")
    return problems


def check_names(docs: list[Doc]) -> list[str]:
    """The objects the daemon relies on exist under their daemon/kube/names.py names."""
    problems: list[str] = []
    required = [
        ("Namespace", names.DAEMON_NAMESPACE, None),
        ("Namespace", names.TENANT_NAMESPACE, None),
        ("RuntimeClass", names.RUNTIME_CLASS, None),
        ("PriorityClass", names.TENANT_PRIORITY_CLASS, None),
        ("PriorityClass", names.WARM_PRIORITY_CLASS, None),
        ("ServiceAccount", names.DAEMON_SERVICE_ACCOUNT, names.DAEMON_NAMESPACE),
        ("ServiceAccount", names.TENANT_SERVICE_ACCOUNT, names.TENANT_NAMESPACE),
    ]
    for kind, name, namespace in required:
        if inv.find(docs, kind, name, namespace) is None:
            problems.append(
                f"names: {kind} {namespace + '/' if namespace else ''}{name} is missing"
            )
    tenant = inv.find(docs, "PriorityClass", names.TENANT_PRIORITY_CLASS)
    warm = inv.find(docs, "PriorityClass", names.WARM_PRIORITY_CLASS)
    if tenant and warm:
        if tenant["value"] <= warm["value"]:
            problems.append("names: tenant pods must outrank warm pods")
        if warm.get("preemptionPolicy") != "Never":
            problems.append("names: warm pods must never preempt anything")
    service_ports = {
        p["port"]
        for s in inv.of_kind(docs, "Service")
        if s["metadata"].get("namespace") == names.DAEMON_NAMESPACE
        for p in s["spec"]["ports"]
    }
    for port in (names.DAEMON_ROUTER_PORT, names.DAEMON_ADMIN_PORT):
        if port not in service_ports:
            problems.append(f"names: no Service exposes daemon port {port}")
    for ingress in inv.of_kind(docs, "Ingress"):
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                ref = path["backend"].get("service") or {}
                service = inv.find(docs, "Service", str(ref.get("name")), names.DAEMON_NAMESPACE)
                ports = {
                    p["port"]
                    for p in (service or {}).get("spec", {}).get("ports", [])
                    if p.get("name") == ref.get("port", {}).get("name")
                    or p["port"] == ref.get("port", {}).get("number")
                }
                if ports != {names.DAEMON_ROUTER_PORT}:
                    problems.append(f"{inv.ident(ingress)}: may expose the router port only")
    return problems + _check_daemon(docs) + _check_config(docs) + _check_redis(docs)
