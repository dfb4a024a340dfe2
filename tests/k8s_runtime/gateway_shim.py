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


def _hot_reloading(command: list[str], source: Path, local: Path, ports: tuple[int, int]) -> int:
    """A warm pod's gateway: OpenClaw hot-reloads an atomically rewritten openclaw.json; the
    stand-in agent does not, so this emulates it by restarting the agent on the new config
    (the pod, its bootstrap and its state dir stay). Ends with the agent's exit code."""
    import signal
    import subprocess
    import time

    def render() -> float:
        mtime = source.stat().st_mtime
        local.write_text(json.dumps(loopback_config(json.loads(source.read_text()), *ports)))
        return mtime

    seen = render()
    child = subprocess.Popen(command)
    stop = {"signal": 0}

    def forward(signum: int, _frame: object) -> None:
        stop["signal"] = signum
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        code = child.poll()
        if code is not None:
            return code
        if not stop["signal"] and source.stat().st_mtime != seen:
            seen = render()
            child.terminate()
            child.wait()
            child = subprocess.Popen(command)
        time.sleep(0.05)


def main(argv: list[str]) -> None:
    gateway_port, webhook_port = int(argv[0]), int(argv[1])
    command = argv[argv.index("--") + 1 :]
    source = Path(os.environ["OPENCLAW_CONFIG_PATH"])
    local = source.with_name(source.name + ".loopback.json")
    if os.environ.get("OTM_SHIM_HOT_RELOAD") == "1":
        os.environ["OPENCLAW_CONFIG_PATH"] = str(local)
        sys.exit(_hot_reloading(command, source, local, (gateway_port, webhook_port)))
    config = loopback_config(json.loads(source.read_text()), gateway_port, webhook_port)
    local.write_text(json.dumps(config))
    os.environ["OPENCLAW_CONFIG_PATH"] = str(local)
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main(sys.argv[1:])
