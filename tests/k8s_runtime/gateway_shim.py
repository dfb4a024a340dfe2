"""Run a pod's agent on loopback: rewrite its openclaw.json to the ports the fake kubelet
mapped for the pod, then exec the agent.

``python -m tests.k8s_runtime.gateway_shim GATEWAY_PORT WEBHOOK_PORT -- CMD...`` with
``OPENCLAW_CONFIG_PATH`` set. In a real pod the config's 18789/8787 on the pod IP are used
as they are; on one test machine every pod shares 127.0.0.1, hence the rewrite. With
``OTM_SHIM_MIRROR=1`` (warm pods) the shim stays the gateway's parent and mirrors every later
rewrite of the pod's config (the bind) for the gateway to hot-reload.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

POD_STATE_DIR = "/home/node/.openclaw"  # daemon/kube/manifests.py STATE_DIR


def loopback_config(
    config: dict[str, Any], gateway_port: int, webhook_port: int, state_dir: str | None = None
) -> dict[str, Any]:
    out = json.loads(json.dumps(config))
    out["gateway"]["port"] = gateway_port
    out["gateway"]["bind"] = "loopback"
    telegram = out["channels"]["telegram"]
    telegram["webhookHost"] = "127.0.0.1"
    telegram["webhookPort"] = webhook_port
    if state_dir is not None:  # the pod's absolute paths, on this machine
        text = json.dumps(out).replace(f'"{POD_STATE_DIR}', f'"{state_dir}')
        out = json.loads(text)
    return out


def _mirroring(command: list[str], source: Path, local: Path, ports: tuple[int, int]) -> int:
    """A warm pod's gateway, whose openclaw.json the bootstrap rewrites at the bind: each
    rewrite is mirrored, with the loopback ports, into the file the gateway watches, by an
    atomic rename as well; the gateway (OpenClaw or the stand-in agent) hot-reloads it.
    Ends with the gateway's exit code."""
    import signal
    import subprocess
    import time

    state_dir = os.environ.get("OPENCLAW_STATE_DIR")

    def render() -> float:
        mtime = source.stat().st_mtime
        config = loopback_config(json.loads(source.read_text()), *ports, state_dir)
        # Test-only: a real gateway's file log stays out of the shared /tmp/openclaw.
        config["logging"] = {"file": str(source.with_name("openclaw-file.log"))}
        tmp = local.with_name(local.name + ".tmp")
        tmp.write_text(json.dumps(config))
        tmp.rename(local)
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
        time.sleep(0.05)


def main(argv: list[str]) -> None:
    gateway_port, webhook_port = int(argv[0]), int(argv[1])
    command = argv[argv.index("--") + 1 :]
    source = Path(os.environ["OPENCLAW_CONFIG_PATH"])
    local = source.with_name(source.name + ".loopback.json")
    if os.environ.get("OTM_SHIM_MIRROR") == "1":
        os.environ["OPENCLAW_CONFIG_PATH"] = str(local)
        sys.exit(_mirroring(command, source, local, (gateway_port, webhook_port)))
    config = loopback_config(json.loads(source.read_text()), gateway_port, webhook_port)
    local.write_text(json.dumps(config))
    os.environ["OPENCLAW_CONFIG_PATH"] = str(local)
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main(sys.argv[1:])
