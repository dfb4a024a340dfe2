#!/usr/bin/env bash
# Idempotent setup: a .venv with otm, and redis-server for the embedded default.
#   ./scripts/setup.sh          runtime only: what the daemon and the CLI need (run-local.sh)
#   ./scripts/setup.sh dev      plus the test and lint tools (test.sh)
#   ./scripts/setup.sh aws-local  plus a local moto server for DynamoDB/S3 (run-prod-local.sh)
# bubblewrap confines local agents (agent_sandbox, docs/security.md).
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
extra=${1:-}
case "$extra" in
    ""|dev|aws-local) ;;
    *) echo "setup: unknown extra '$extra' (dev, aws-local or nothing)" >&2; exit 2 ;;
esac
# The TUI's Textual comes with every local install (the server image leaves it out).
spec=".[tui]"
[ -n "$extra" ] && spec=".[tui,$extra]"
# One stamp per extra; dev includes everything aws-local brings, and both include the runtime.
stamp=".venv/.otm-installed${extra:+-$extra}"
satisfied() {
    local s=$1
    [ -f "$s" ] && [ ! pyproject.toml -nt "$s" ] && [ ! constraints.txt -nt "$s" ]
}
if satisfied "$stamp" || satisfied .venv/.otm-installed-dev \
    || { [ -z "$extra" ] && satisfied .venv/.otm-installed-aws-local; }; then
    exit 0
fi
echo "setup: installing otm${extra:+ with its $extra extra} into .venv (progress below)" >&2
.venv/bin/python -m pip install -q --upgrade pip
# pip's own progress lines, one per package, instead of minutes of silence.
set +e
# The runtime dependencies at the versions constraints.txt pins (the ones the server image
# installs and tests/test_packaging.py checks); dev and TUI extras resolve freely.
.venv/bin/python -m pip install --constraint constraints.txt -e "$spec" 2>&1 \
    | grep --line-buffered -E '^(Collecting|Successfully installed|ERROR)' \
    | sed -u -e 's/^/setup: /' -e 's/ (from .*//' >&2
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] || { echo "setup: pip install failed" >&2; exit "$status"; }
touch "$stamp"
echo "setup: done" >&2
