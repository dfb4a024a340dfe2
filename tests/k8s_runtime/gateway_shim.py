"""Run a pod's agent on loopback: rewrite its openclaw.json to the ports the fake kubelet
mapped for the pod, then exec the agent.

``python -m tests.k8s_runtime.gateway_shim GATEWAY_PORT WEBHOOK_PORT -- CMD...`` with
``OPENCLAW_CONFIG_PATH`` set. In a real pod the config's 18789/8787 on the pod IP are used
as they are; on one test machine every pod shares 127.0.0.1, hence the rewrite.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def loopback_config(config: dict[str, Any], gateway_port: int, webhook_port: int) -> dict[str, Any]:
    out = json.loads(json.dumps(config))
    out["gateway"]["port"] = gateway_port
    out["gateway"]["bind"] = "loopback"
    telegram = out["channels"]["telegram"]
    telegram["webhookHost"] = "127.0.0.1"
    telegram["webhookPort"] = webhook_port
    return out


def main(argv: list[str]) -> None:
    gateway_port, webhook_port = int(argv[0]), int(argv[1])
    command = argv[argv.index("--") + 1 :]
    source = Path(os.environ["OPENCLAW_CONFIG_PATH"])
    local = source.with_name(source.name + ".loopback.json")
    config = loopback_config(json.loads(source.read_text()), gateway_port, webhook_port)
    local.write_text(json.dumps(config))
    os.environ["OPENCLAW_CONFIG_PATH"] = str(local)
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main(sys.argv[1:])
