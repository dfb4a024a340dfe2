"""Per-pod bind tokens of warm pods (see daemon/kube/warm_bootstrap.py).

One key per namespace (the ``otm-warm-bind`` Secret) and one token per pod,
HMAC-SHA256(key, pod name): the bootstrap derives its own from its name, the
daemon derives the claimed pod's at bind time. A token read from one pod is
good for that pod only.
"""

from __future__ import annotations

import hashlib
import hmac


def pod_bind_token(key: str, pod_name: str) -> str:
    return hmac.new(key.encode(), pod_name.encode(), hashlib.sha256).hexdigest()
