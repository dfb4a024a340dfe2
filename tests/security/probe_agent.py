"""Agent command for the sandbox tests: acts as a hostile tenant's agent.

At start it tries to read each path in ``OTM_AGENT_PROBE_READ`` (os.pathsep
separated) and prints one line per path (``PROBE read <path> ok|denied``) plus the
names of its environment variables, then becomes the stand-in agent (so the
runtime sees a ready agent)."""

from __future__ import annotations

import os
import sys

for path in filter(None, os.environ.get("OTM_AGENT_PROBE_READ", "").split(os.pathsep)):
    try:
        with open(path, "rb") as fh:
            fh.read()
        print(f"PROBE read {path} ok", flush=True)
    except OSError as exc:
        print(f"PROBE read {path} denied ({exc.strerror})", flush=True)
print("PROBE env " + " ".join(sorted(os.environ)), flush=True)
os.execv(sys.executable, [sys.executable, "-m", "otm.devtools.agent_stub"])
