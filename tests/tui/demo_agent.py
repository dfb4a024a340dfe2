"""Agent command for the dashboard screenshot's daemon (OTM_AGENT_COMMAND): the bundled
stand-in agent, except that tenants named in OTM_AGENT_FAIL_TENANTS crash at start and
those in OTM_AGENT_SLOW_TENANTS take an hour to boot (real failed and provisioning
states, no registry tricks). The local runtime runs each agent under
{agents_dir}/{tenant_id}/{instance}/state, which is how the tenant is known here."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    tenant_id = Path(os.environ["OPENCLAW_STATE_DIR"]).parent.parent.name
    if tenant_id in os.environ.get("OTM_AGENT_FAIL_TENANTS", "").split(","):
        print(f"fatal: cannot load the gateway config for {tenant_id}", flush=True)
        sys.exit(1)
    if tenant_id in os.environ.get("OTM_AGENT_SLOW_TENANTS", "").split(","):
        os.environ["OTM_AGENT_BOOT_DELAY_S"] = "3600"
    os.execv(sys.executable, [sys.executable, "-m", "otm.devtools.agent_stub"])


if __name__ == "__main__":
    main()
