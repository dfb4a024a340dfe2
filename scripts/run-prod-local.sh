#!/usr/bin/env bash
# Run otm on its production backends, all on this machine: the DynamoDB registry and the
# S3 state store on a local moto server, and a Redis of its own (not the private one the
# embedded default starts). Agents stay local processes (OTM_RUNTIME=kubernetes needs a
# cluster: docs/setup-guide.md). Ctrl-C stops everything this script started.
#
# What it sets up for you (what a real account needs instead):
#   - dummy AWS credentials and AWS_REGION/AWS_DEFAULT_REGION (moto accepts any)
#   - AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_S3 pointing at moto
#   - OTM_REGISTRY=dynamodb OTM_STATE_STORE=s3 OTM_DYNAMODB_TABLE OTM_S3_BUCKET
#   - the daemon creates the table and the bucket itself when missing (these credentials
#     allow it); the setup guide's TLS-only bucket policy is left out on purpose: moto
#     serves plain HTTP here, and that policy would deny every request.
#   - OTM_REDIS_URL: a redis-server on OTM_LOCAL_REDIS_PORT, unless you set OTM_REDIS_URL.
# Ports: OTM_MOTO_PORT (5050), OTM_LOCAL_REDIS_PORT (6390), and run-local.sh's
# (OTM_FAKE_TELEGRAM_PORT, --router-port, --admin-port). Extra arguments go to `otm daemon`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh aws-local

export OTM_DATA_DIR=${OTM_DATA_DIR:-$HOME/.otm-prod-local}
mkdir -p "$OTM_DATA_DIR"
moto_port=${OTM_MOTO_PORT:-5050}
redis_port=${OTM_LOCAL_REDIS_PORT:-6390}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_for_port() {  # name port pid log
    for _ in $(seq 1 200); do
        if .venv/bin/python -c "import socket,sys; socket.create_connection(('127.0.0.1', $2), 0.2)" \
            2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$3" 2>/dev/null; then
            echo "run-prod-local: $1 could not start on 127.0.0.1:$2:" >&2
            tail -n 3 "$4" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "run-prod-local: $1 did not listen on 127.0.0.1:$2" >&2
    exit 1
}

.venv/bin/python -m moto.server -H 127.0.0.1 -p "$moto_port" >"$OTM_DATA_DIR/moto.log" 2>&1 &
pids+=($!)
wait_for_port "moto server" "$moto_port" "$!" "$OTM_DATA_DIR/moto.log"
echo "moto (DynamoDB + S3) on http://127.0.0.1:$moto_port"

if [ -z "${OTM_REDIS_URL:-}" ]; then
    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
        --dir "$OTM_DATA_DIR" >"$OTM_DATA_DIR/redis.log" 2>&1 &
    pids+=($!)
    wait_for_port "redis-server" "$redis_port" "$!" "$OTM_DATA_DIR/redis.log"
    export OTM_REDIS_URL="redis://127.0.0.1:$redis_port/0"
    echo "redis on $OTM_REDIS_URL"
fi

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$moto_port"
export OTM_REGISTRY=dynamodb OTM_STATE_STORE=s3
export OTM_DYNAMODB_TABLE=${OTM_DYNAMODB_TABLE:-otm-local-tenants}
export OTM_S3_BUCKET=${OTM_S3_BUCKET:-otm-local-state}
echo "registry: DynamoDB table $OTM_DYNAMODB_TABLE; state: S3 bucket $OTM_S3_BUCKET"
./scripts/run-local.sh "$@"
