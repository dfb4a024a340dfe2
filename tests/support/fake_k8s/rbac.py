"""RBAC for the fake API server: who a request is (bearer token → user), what it asks
for (verb, API group, resource, subresource, namespace, name: the request attributes a
real apiserver derives) and whether the Roles/ClusterRoles and their bindings allow it.

Matching is the RBAC authorizer's (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac):

* a RoleBinding grants its Role (or a ClusterRole) in the binding's namespace only, so
  never a cluster-scoped resource (nodes, or namespaces listed), whatever the rules say; a
  ClusterRoleBinding grants its ClusterRole everywhere, cluster-scoped objects included;
  ``namespaces/{name}`` counts as in namespace {name}, as the apiserver's RequestInfo has it;
* a rule matches when its verbs, apiGroups and resources (``pods/log`` names a subresource,
  ``*`` matches all, ``*/log`` a subresource of any resource) hold the request's, and when
  it has ``resourceNames``, the request names one of them; requests without a name
  (create, list, watch, deletecollection) never match a rule with resourceNames;
* subjects are ServiceAccounts (``system:serviceaccount:<ns>:<name>``), Users and Groups
  (every ServiceAccount is in ``system:serviceaccounts`` and
  ``system:serviceaccounts:<ns>``, every authenticated user in ``system:authenticated``).

Denials are 403 Forbidden with the apiserver's message, e.g. ``pods "a" is forbidden:
User "system:serviceaccount:otm-system:otm-daemon" cannot delete resource "pods" in API
group "" in the namespace "otm-tenants"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import ApiError
from .resources import parse_path

JSON = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
"""The group the fake's own (admin) token is in: allowed everything, as a real cluster-admin."""


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True)
class RequestAttributes:
    """What RBAC authorizes: one resource request (non-resource URLs are not modelled)."""

    verb: str
    api_group: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None

    @property
    def resource_path(self) -> str:
        """``pods`` or ``pods/log``: how a rule names it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> RequestAttributes:
    """The verb and resource of an API request, as the apiserver's RequestInfoFactory
    derives them. Paths the fake does not serve get a ``get`` of resource ``""``."""
    parsed = parse_path(path)
    if parsed is None:
        return RequestAttributes(method.lower(), "", "", None, None, None)
    watching = query.get("watch") in ("true", "True", "1")
    collection = parsed.name is None
    verb = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }.get(method.upper(), "get")
    if verb == "get" and (watching or collection):
        verb = "watch" if watching else "list"
    namespace = parsed.namespace
    if parsed.resource.group == "" and parsed.resource.plural == "namespaces":
        # `namespaces/{name}` is, to the apiserver, a request in namespace {name}: a
        # RoleBinding there may grant reading its own Namespace object.
        namespace = parsed.name
    return RequestAttributes(
        verb,
        parsed.resource.group,
        parsed.resource.plural,
        parsed.subresource,
        namespace,
        parsed.name,
    )


def _has(values: Iterable[str], wanted: str) -> bool:
    values = list(values)
    return "*" in values or wanted in values


def _resource_matches(rule_resources: Iterable[str], attrs: RequestAttributes) -> bool:
    for entry in rule_resources:
        if entry == "*" or entry == attrs.resource_path:
            return True
        if attrs.subresource and entry == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: RequestAttributes) -> bool:
    if not _has(rule.get("verbs") or [], attrs.verb):
        return False
    if not _has(rule.get("apiGroups") or [], attrs.api_group):
        return False
    if not _resource_matches(rule.get("resources") or [], attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or (attrs.name is not None and attrs.name in names)


@dataclass(frozen=True)
class Grant:
    """One binding resolved: its rules apply to these subjects in ``namespace`` (None:
    everywhere, from a ClusterRoleBinding)."""

    namespace: str | None
    subjects: tuple[str, ...]  # "User:name", "Group:name"
    rules: tuple[Mapping[str, Any], ...]


class RbacPolicy:
    """Roles, ClusterRoles and their bindings, from manifests (e.g. a kustomize render)."""

    def __init__(self, objects: Iterable[Mapping[str, Any]]) -> None:
        objects = [o for o in objects if (o.get("apiVersion") or "").startswith(RBAC_GROUP)]
        roles = {
            (o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in objects
            if o["kind"] == "Role"
        }
        cluster_roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
        grants: list[Grant] = []
        for binding in objects:
            if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            namespace = binding["metadata"].get("namespace")
            ref = binding["roleRef"]
            if ref["kind"] == "Role":
                role = roles.get((namespace, ref["name"]))
            else:
                role = cluster_roles.get(ref["name"])
            if role is None:  # a binding to a missing role grants nothing, as in a cluster
                continue
            grants.append(
                Grant(
                    namespace if binding["kind"] == "RoleBinding" else None,
                    tuple(_subject_key(s) for s in binding.get("subjects") or []),
                    tuple(role.get("rules") or []),
                )
            )
        self.grants = tuple(grants)

    def allows(self, user: str, groups: Iterable[str], attrs: RequestAttributes) -> bool:
        keys = {f"User:{user}", *(f"Group:{g}" for g in groups)}
        for grant in self.grants:
            if grant.namespace is not None and grant.namespace != attrs.namespace:
                continue
            if not keys.intersection(grant.subjects):
                continue
            if any(rule_allows(rule, attrs) for rule in grant.rules):
                return True
        return False

    def rules_for(self, user: str, namespace: str | None) -> list[Mapping[str, Any]]:
        """Every rule that applies to ``user`` in ``namespace`` (bound by user/SA only)."""
        key = f"User:{user}"
        return [
            rule
            for grant in self.grants
            if key in grant.subjects and grant.namespace in (None, namespace)
            for rule in grant.rules
        ]


def _subject_key(subject: Mapping[str, Any]) -> str:
    if subject["kind"] == "ServiceAccount":
        return f"User:{service_account_user(subject['namespace'], subject['name'])}"
    return f"{subject['kind']}:{subject['name']}"


def groups_of(user: str) -> tuple[str, ...]:
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        return (
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        )
    return ("system:authenticated",)


def forbidden(user: str, attrs: RequestAttributes) -> ApiError:
    """The apiserver's 403 for a denied request."""
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    target = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    message = (
        f'{target} is forbidden: User "{user}" cannot {attrs.verb} resource '
        f'"{attrs.resource_path}" in API group "{attrs.api_group}" {where}'
    )
    return ApiError(
        403,
        "Forbidden",
        message,
        details={
            **({"name": attrs.name} if attrs.name else {}),
            "group": attrs.api_group,
            "kind": attrs.resource,
        },
    )


@dataclass(frozen=True)
class ServedRequest:
    """A request the fake served (it passed authorization): by whom, and for what."""

    user: str
    attrs: RequestAttributes


@dataclass
class Authorizer:
    """Users by bearer token, the policy, and whether it is enforced (or only recorded)."""

    policy: RbacPolicy | None
    users: dict[str, str]  # token → user name
    enforce: bool = True

    def user_for(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return (
            self.users.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        )

    def check(self, user: str, attrs: RequestAttributes) -> None:
        if user == MASTERS or self.policy is None or not self.enforce:
            return
        if not self.policy.allows(user, groups_of(user), attrs):
            raise forbidden(user, attrs)
