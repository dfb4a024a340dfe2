"""Cross-reference checks: every object a rendered manifest names must exist in the
render, or be on a documented allow-list (inventory.py). Pure functions over dicts.

These catch what schemas cannot, e.g. kustomize's namePrefix renaming a RuntimeClass
but not the runtimeClassName that points at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.deploy import inventory as inv
from tests.deploy.netpol import selector_matches

Doc = dict[str, Any]


@dataclass(frozen=True)
class _RefKeys:
    """Where a pod spec names objects of one kind (Secrets and ConfigMaps differ only here)."""

    volume: str
    """The key of a volume (or projected volume source) of this kind."""
    volume_name: str
    """The name field of such a volume (a projected source's is always ``name``)."""
    env: str
    """The ``env[].valueFrom`` key."""
    env_from: str
    """The ``envFrom[]`` key."""


_SECRET_KEYS = _RefKeys("secret", "secretName", "secretKeyRef", "secretRef")
_CONFIGMAP_KEYS = _RefKeys("configMap", "name", "configMapKeyRef", "configMapRef")


def _refs(spec: Doc, keys: _RefKeys) -> Iterator[tuple[str, bool]]:
    """(name, optional) for every object of one kind a pod spec's volumes and env name."""
    for volume in spec.get("volumes") or []:
        if keys.volume in volume:
            ref = volume[keys.volume]
            yield ref[keys.volume_name], bool(ref.get("optional"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if keys.volume in source:
                yield source[keys.volume]["name"], bool(source[keys.volume].get("optional"))
    for container in inv.containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get(keys.env)
            if ref:
                yield ref["name"], bool(ref.get("optional"))
        for env_from in container.get("envFrom") or []:
            if keys.env_from in env_from:
                ref = env_from[keys.env_from]
                yield ref["name"], bool(ref.get("optional"))


def _secret_refs(spec: Doc) -> Iterator[tuple[str, bool]]:
    """(secret name, optional) for every Secret a pod spec names."""
    yield from _refs(spec, _SECRET_KEYS)
    for pull in spec.get("imagePullSecrets") or []:
        yield pull["name"], False


def _configmap_refs(spec: Doc) -> Iterator[tuple[str, bool]]:
    return _refs(spec, _CONFIGMAP_KEYS)


def check_pod_spec_references(owner: Doc, spec: Doc, namespace: str, docs: list[Doc]) -> list[str]:
    """runtimeClassName, priorityClassName, serviceAccountName, Secrets, ConfigMaps."""
    where = inv.ident(owner)
    problems: list[str] = []
    runtime_class = spec.get("runtimeClassName")
    if runtime_class and inv.find(docs, "RuntimeClass", runtime_class) is None:
        problems.append(f"{where}: runtimeClassName {runtime_class!r} is not in the render")
    priority_class = spec.get("priorityClassName")
    if (
        priority_class
        and priority_class not in inv.BUILTIN_PRIORITY_CLASSES
        and inv.find(docs, "PriorityClass", priority_class) is None
    ):
        problems.append(f"{where}: priorityClassName {priority_class!r} is not in the render")
    account = spec.get("serviceAccountName") or "default"
    if (
        account not in inv.BUILTIN_SERVICE_ACCOUNTS
        and inv.find(docs, "ServiceAccount", account, namespace) is None
    ):
        problems.append(
            f"{where}: serviceAccountName {account!r} is not in the render (namespace {namespace})"
        )
    named = (
        ("Secret", _secret_refs(spec), inv.secret_is_out_of_band),
        ("ConfigMap", _configmap_refs(spec), inv.configmap_is_out_of_band),
    )
    for kind, refs, out_of_band in named:
        for name, optional in refs:
            if optional or inv.find(docs, kind, name, namespace) is not None:
                continue
            if not out_of_band(namespace, name):
                problems.append(
                    f"{where}: {kind} {namespace}/{name} is neither in the render nor on the "
                    "out-of-band allow-list"
                )
    return problems


def _check_workloads(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for doc in docs:
        template = inv.pod_template(doc)
        if template is None:
            continue
        meta, spec = template
        namespace = inv.pod_namespace(doc)
        problems += check_pod_spec_references(doc, spec, namespace, docs)
        selector = (doc.get("spec") or {}).get("selector")
        if doc["kind"] in {
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
        } and not selector_matches(selector, meta.get("labels") or {}):
            problems.append(f"{inv.ident(doc)}: selector does not match its pod template")
        if doc["kind"] == "StatefulSet":
            service = doc["spec"].get("serviceName")
            if service and inv.find(docs, "Service", service, namespace) is None:
                problems.append(f"{inv.ident(doc)}: serviceName {service!r} is not in the render")
            for claim in doc["spec"].get("volumeClaimTemplates") or []:
                storage_class = (claim.get("spec") or {}).get("storageClassName")
                if not storage_class:
                    # A new EKS cluster (1.30+) has no default StorageClass: the claim
                    # would stay Pending for ever.
                    problems.append(f"{inv.ident(doc)}: a volume claim names no storageClassName")
                elif (
                    storage_class not in inv.CLUSTER_STORAGE_CLASSES
                    and inv.find(docs, "StorageClass", storage_class) is None
                ):
                    problems.append(
                        f"{inv.ident(doc)}: storageClassName {storage_class!r} is not in the render"
                    )
    return problems


def _pods_in(docs: list[Doc], namespace: str) -> list[tuple[Doc, Doc]]:
    """(template metadata, spec) of the rendered pods in one namespace."""
    found = []
    for doc in docs:
        template = inv.pod_template(doc)
        if template is not None and inv.pod_namespace(doc) == namespace:
            found.append(template)
    return found


def _check_services(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for service in inv.of_kind(docs, "Service"):
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            continue
        namespace = service["metadata"].get("namespace", "")
        pods = [
            (meta, spec)
            for meta, spec in _pods_in(docs, namespace)
            if selector_matches({"matchLabels": selector}, meta.get("labels") or {})
        ]
        if not pods:
            problems.append(f"{inv.ident(service)}: selector {selector} matches no pod")
            continue
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and not any(
                target in inv.named_ports(spec) for _, spec in pods
            ):
                problems.append(
                    f"{inv.ident(service)}: targetPort {target!r} is no container port "
                    "of the pods it selects"
                )
    for pdb in inv.of_kind(docs, "PodDisruptionBudget"):
        namespace = pdb["metadata"].get("namespace", "")
        selector = pdb["spec"].get("selector")
        if not any(
            selector_matches(selector, meta.get("labels") or {})
            for meta, _ in _pods_in(docs, namespace)
        ):
            problems.append(f"{inv.ident(pdb)}: selector matches no pod")
    return problems


def _check_ingresses(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for ingress in inv.of_kind(docs, "Ingress"):
        namespace = ingress["metadata"].get("namespace", "")
        ingress_class = ingress["spec"].get("ingressClassName")
        if (
            ingress_class
            and ingress_class not in inv.EXTERNAL_INGRESS_CLASSES
            and inv.find(docs, "IngressClass", ingress_class) is None
        ):
            problems.append(f"{inv.ident(ingress)}: IngressClass {ingress_class!r} is unknown")
        backends = [
            path["backend"]
            for rule in ingress["spec"].get("rules") or []
            for path in (rule.get("http") or {}).get("paths") or []
        ]
        if "defaultBackend" in ingress["spec"]:
            backends.append(ingress["spec"]["defaultBackend"])
        for backend in backends:
            ref = backend.get("service")
            if ref is None:
                continue
            service = inv.find(docs, "Service", ref["name"], namespace)
            if service is None:
                problems.append(
                    f"{inv.ident(ingress)}: Service {ref['name']!r} is not in the render"
                )
                continue
            port = ref.get("port") or {}
            service_ports = service["spec"].get("ports") or []
            if not any(
                p.get("name") == port.get("name")
                if "name" in port
                else p["port"] == port.get("number")
                for p in service_ports
            ):
                problems.append(f"{inv.ident(ingress)}: Service {ref['name']!r} has no port {port}")
    return problems


def _check_rbac_references(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for binding in inv.of_kind(docs, "RoleBinding") + inv.of_kind(docs, "ClusterRoleBinding"):
        namespace = binding["metadata"].get("namespace")
        role_ref = binding["roleRef"]
        role_namespace = namespace if role_ref["kind"] == "Role" else None
        if inv.find(docs, role_ref["kind"], role_ref["name"], role_namespace) is None:
            problems.append(
                f"{inv.ident(binding)}: {role_ref['kind']} {role_ref['name']!r} "
                "is not in the render"
            )
        for subject in binding.get("subjects") or []:
            if subject["kind"] != "ServiceAccount":
                continue
            subject_namespace = subject.get("namespace") or namespace
            if inv.find(docs, "ServiceAccount", subject["name"], subject_namespace) is None:
                problems.append(
                    f"{inv.ident(binding)}: subject ServiceAccount "
                    f"{subject_namespace}/{subject['name']} is not in the render"
                )
    return problems


def _check_namespaces(docs: list[Doc]) -> list[str]:
    rendered = {d["metadata"]["name"] for d in inv.of_kind(docs, "Namespace")}
    problems: list[str] = []
    for doc in docs:
        if doc.get("kind") in inv.CLUSTER_SCOPED_KINDS:
            if (doc.get("metadata") or {}).get("namespace"):
                problems.append(f"{inv.ident(doc)}: a cluster-scoped object has a namespace")
            continue
        namespace = (doc.get("metadata") or {}).get("namespace")
        if not namespace:
            problems.append(f"{inv.ident(doc)}: namespaced object without a namespace")
        elif namespace not in rendered:
            problems.append(f"{inv.ident(doc)}: namespace {namespace!r} is not in the render")
    return problems


def _check_karpenter_references(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for pool in inv.of_kind(docs, "NodePool"):
        ref = pool["spec"]["template"]["spec"].get("nodeClassRef") or {}
        if inv.find(docs, str(ref.get("kind")), str(ref.get("name"))) is None:
            problems.append(f"{inv.ident(pool)}: nodeClassRef {ref} is not in the render")
    return problems


def check_references(docs: list[Doc]) -> list[str]:
    """Every object a manifest names exists in the render or is allow-listed."""
    return [
        *_check_namespaces(docs),
        *_check_workloads(docs),
        *_check_services(docs),
        *_check_ingresses(docs),
        *_check_rbac_references(docs),
        *_check_karpenter_references(docs),
    ]
