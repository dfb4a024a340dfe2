#!/usr/bin/env bash
# Set up, then run otm on the embedded default (SQLite, local agent processes,
# a data directory and a private redis-server) with a local fake Telegram Bot
# API so the whole message path works offline. Ctrl-C stops everything.
#
# Agents reach a model through the daemon's model gateway; with no upstream configured
# (OTM_AGENT_MODEL_BASE_URL, or OTM_MODEL_UPSTREAM=bedrock) a local stub LLM is started
# behind it, so usage shows up in `otm tenant usage`.
#
# For real Telegram: OTM_TELEGRAM_API_BASE=https://api.telegram.org
#                    OTM_PUBLIC_BASE_URL=https://your.public.host ./scripts/run-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

export OTM_DATA_DIR=${OTM_DATA_DIR:-$HOME/.otm}
mkdir -p "$OTM_DATA_DIR"
fake_pid=""
if [ -z "${OTM_TELEGRAM_API_BASE:-}" ]; then
    port=${OTM_FAKE_TELEGRAM_PORT:-8099}
    fake_log="$OTM_DATA_DIR/fake-telegram.log"
    .venv/bin/python -m otm.devtools.fake_telegram --host 127.0.0.1 --port "$port" \
        >"$fake_log" 2>&1 &
    fake_pid=$!
    # It prints its URL once bound: say "listening" only then, and say why if it died.
    until grep -q '^http' "$fake_log" 2>/dev/null; do
        if ! kill -0 "$fake_pid" 2>/dev/null; then
            echo "run-local: the fake Telegram Bot API could not start on 127.0.0.1:$port:" >&2
            tail -n 1 "$fake_log" >&2
            echo "run-local: another run-local.sh is probably running; stop it, or choose other" \
                "ports: OTM_FAKE_TELEGRAM_PORT=N ./scripts/run-local.sh --router-port N --admin-port N" >&2
            exit 1
        fi
        sleep 0.1
    done
    export OTM_TELEGRAM_API_BASE="http://127.0.0.1:$port"
    echo "fake Telegram Bot API on $OTM_TELEGRAM_API_BASE (replies: $OTM_TELEGRAM_API_BASE/_fake/sent)"
fi
llm_pid=""
if [ -z "${OTM_AGENT_MODEL_BASE_URL:-}" ] && [ "${OTM_MODEL_UPSTREAM:-openai}" != "bedrock" ]; then
    llm_port=${OTM_STUB_LLM_PORT:-8098}
    .venv/bin/python -m otm.devtools.stub_llm --host 127.0.0.1 --port "$llm_port" \
        >"$OTM_DATA_DIR/stub-llm.log" 2>&1 &
    llm_pid=$!
    export OTM_AGENT_MODEL_BASE_URL="http://127.0.0.1:$llm_port/v1"
    export OTM_AGENT_MODEL_ID=${OTM_AGENT_MODEL_ID:-stub-model}
    echo "stub LLM on $OTM_AGENT_MODEL_BASE_URL, behind the daemon's model gateway"
fi
cleanup() {
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
    [ -n "$llm_pid" ] && kill "$llm_pid" 2>/dev/null
    true
}
trap cleanup EXIT
.venv/bin/otm daemon "$@"
