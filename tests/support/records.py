"""Registry records the loop tests and benches start from."""

from __future__ import annotations

from typing import Any

from daemon.model import Tenant, TenantStatus
from daemon.ports import Instance


def running_record(tenant_id: str, instance: Instance, **fields: Any) -> Tenant:
    """The record of a tenant whose agent ``instance`` is up (as a finished wake leaves it)."""
    return Tenant(
        tenant_id=tenant_id,
        status=TenantStatus.RUNNING,
        pod_name=instance.name,
        endpoint=instance.webhook_url,
        **fields,
    )
