"""The daemon's RBAC as deployed: the Roles and bindings rendered from deploy/kustomize,
for fake API servers that authenticate the daemon as its ServiceAccount and enforce them
(a verb the daemon uses but the Role lacks is a 403 in tests, as in a cluster)."""

from __future__ import annotations

import functools
from typing import Any

from daemon.kube import names
from tests.deploy.render import KUSTOMIZE_ROOT, render
from tests.support.fake_k8s.rbac import RbacPolicy, service_account_user

DAEMON_USER = service_account_user(names.DAEMON_NAMESPACE, names.DAEMON_SERVICE_ACCOUNT)


@functools.cache
def deployed_rbac_objects() -> tuple[dict[str, Any], ...]:
    """The RBAC objects of the base (every overlay shares them; tests/deploy checks)."""
    docs = render(KUSTOMIZE_ROOT / "base")
    return tuple(d for d in docs if d.get("apiVersion", "").startswith("rbac.authorization"))


def daemon_rbac_options(*, enforce: bool = True) -> dict[str, Any]:
    """`running_fake_k8s` options: the daemon's kubeconfig is its ServiceAccount's, under
    the deployed RBAC."""
    return {
        "rbac": RbacPolicy(deployed_rbac_objects()),
        "enforce_rbac": enforce,
        "kubeconfig_user": DAEMON_USER,
    }
