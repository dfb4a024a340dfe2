"""`otm logs` options beyond follow/since/tail: kubectl's --timestamps, --previous and -c.

Containers are named as the operator knows them (``gateway``, ``restore``, ``sync``)
and mapped to the pod's container names here. The local runtime runs one process per
agent: its lines always carry a timestamp, ``previous`` is the run before the current
one in the tenant's log file, and only ``gateway`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass

POD_CONTAINERS = {"gateway": "gateway", "restore": "state-restore", "sync": "state-sync"}
"""Operator name → container of a tenant pod (daemon/kube/manifests.py)."""


@dataclass(frozen=True)
class LogOptions:
    timestamps: bool = False
    previous: bool = False
    container: str = "gateway"

    def __post_init__(self) -> None:
        if self.container not in POD_CONTAINERS:
            raise ValueError(
                f"unknown container {self.container!r} (one of {', '.join(POD_CONTAINERS)})"
            )

    @property
    def pod_container(self) -> str:
        return POD_CONTAINERS[self.container]


DEFAULT_LOG_OPTIONS = LogOptions()
