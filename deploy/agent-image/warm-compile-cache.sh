#!/bin/sh
# Boot the OpenClaw gateway once at image build time, so Node's compile cache
# ($TMPDIR/node-compile-cache/openclaw/<version>/..., ~43 MB) is in the image.
# A pod's /tmp is an empty volume on every wake: without a baked cache every cold
# start recompiles OpenClaw's ES modules (about 3.5 CPU-seconds measured on 2026.9.6).
# Pods copy the cache into their /tmp before the gateway starts (OTM_COMPILE_CACHE).
#
# Usage (in the Dockerfile): TMPDIR=/opt/otm/tmp warm-compile-cache.sh
set -eu
: "${TMPDIR:?set TMPDIR to the directory the cache is baked into}"
work=$(mktemp -d)
port=18789
mkdir -p "$TMPDIR" "$work/state/workspace"
cat > "$work/openclaw.json" <<JSON
{"gateway": {"mode": "local", "bind": "loopback", "port": $port,
             "controlUi": {"enabled": false}},
 "channels": {"telegram": {"enabled": false}},
 "models": {"catalogRefresh": {"enabled": false}},
 "plugins": {"allow": ["telegram"], "slots": {"memory": "none"}},
 "update": {"checkOnStart": false},
 "agents": {"defaults": {"workspace": "$work/state/workspace"}}}
JSON
HOME="$work" OPENCLAW_STATE_DIR="$work/state" OPENCLAW_CONFIG_PATH="$work/openclaw.json" \
  OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 \
  node openclaw.mjs gateway --allow-unconfigured > "$work/gateway.log" 2>&1 &
pid=$!
ready=""
i=0
while [ $i -lt 600 ]; do  # bounded: 300 s
  if node -e "fetch('http://127.0.0.1:$port/readyz').then(r=>r.json()).then(b=>process.exit(b.ready?0:1)).catch(()=>process.exit(1))"; then
    ready=1
    break
  fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
  i=$((i + 1))
done
kill -TERM $pid 2>/dev/null || true
wait $pid || true
if [ -z "$ready" ]; then
  cat "$work/gateway.log" >&2
  echo "warm-compile-cache: the gateway never became ready" >&2
  exit 1
fi
rm -rf "$work"
du -sh "$TMPDIR/node-compile-cache"
