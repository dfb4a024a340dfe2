"""Registry records the loop tests and benches start from."""

from __future__ import annotations

from typing import Any

from daemon.model import Tenant, TenantStatus
from daemon.ports import AgentLaunch, Instance


def running_record(tenant_id: str, instance: Instance, **fields: Any) -> Tenant:
    """The record of a tenant whose agent ``instance`` is up (as a finished wake leaves it)."""
    return Tenant(
        tenant_id=tenant_id,
        status=TenantStatus.RUNNING,
        pod_name=instance.name,
        endpoint=instance.webhook_url,
        **fields,
    )


def sample_launch(tenant_id: str = "alice", **overrides: Any) -> AgentLaunch:
    """A tenant's launch with distinct, recognisable secrets (tests grep for them)."""
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "bot_token": f"1000{len(tenant_id)}:token-of-{tenant_id}",
        "webhook_secret": f"whsec-{tenant_id}",
        "gateway_token": f"gw-{tenant_id}",
        "hooks_token": f"hooks-{tenant_id}",
    }
    return AgentLaunch(**{**values, **overrides})
