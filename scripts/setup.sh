#!/usr/bin/env bash
# Idempotent setup: a .venv with otm and its dev tools, redis-server for the embedded default,
# and bubblewrap, which confines local agents (agent_sandbox, docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v redis-server >/dev/null 2>&1; then
    echo "setup: installing redis-server (the embedded default starts a private one)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# The distro package starts a system redis on 6379; otm never uses it.
if ! command -v bwrap >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (local agents run sandboxed with it)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bubblewrap >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.otm-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev]"
    touch "$stamp"
fi
