"""The Kubernetes section of bench/openclaw_wake.py: the same rounds (cold, warm with history,
warm without) through a real ``python -m daemon`` on the Kubernetes runtime, against the fake
API server whose kubelet runs real OpenClaw gateways (tests/k8s_runtime/process_backend.py):
cold pods boot on the tenant's state restored from S3 (moto); warm pods boot at pod start on
the warm config and are bound at claim (vended STS credentials, the emulated sync sidecar's
restore of ``agents/main/`` + workspace, one atomic config rewrite, hot reload).

What it does not model: pod scheduling, image pulls, Kata VM boots and S3 latency (all
zero here), so it measures the gateway side of a wake, which is what the warm pod hides.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex

import boto3

from bench.openclaw_wake import (
    BOOT_TIMEOUT_S,
    LocalBench,
    Section,
    _local_rounds,
    bench_daemon,
)
from bench.redis_server import BenchRedis
from bench.wake import scratch
from daemon.adapters.state_s3 import S3StateStore
from daemon.kube import names
from tests.deploy.iam_docs import create_state_role
from tests.k8s_runtime.process_backend import ProcessPodBackend
from tests.support.fake_cluster import kubernetes_daemon_env, running_pod_cluster
from tests.support.openclaw import NODE_BIN_DIR, OPENCLAW_ENTRY
from tests.support.servers import FAKE_AWS_ENV, running_moto, telegram_and_llm

NS = names.TENANT_NAMESPACE
BUCKET = "otm-bench-tenant-state"
ACCOUNT = "123456789012"  # moto's default account
ROLE = "otm-tenant-state"


def _aws_setup(url: str) -> None:
    """The bucket and the tenant-state role of deploy/iam, as the setup guide creates them."""
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    create_state_role(boto3.client("iam", endpoint_url=url), BUCKET)


async def run_k8s(rounds: int, args: argparse.Namespace) -> Section:
    os.environ.update(FAKE_AWS_ENV)  # boto3 in this process (the moto setup, the S3 store)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    gateway = [str(NODE_BIN_DIR / "node"), str(OPENCLAW_ENTRY), "gateway", "--allow-unconfigured"]
    with scratch("otm-bench-openclaw-wake-k8s-") as root, running_moto() as moto:
        _aws_setup(moto)
        store = await S3StateStore.open(BUCKET, "us-east-1", moto)
        backend = ProcessPodBackend(
            root / "pods",
            state_store=store,
            warm_s3=(moto, BUCKET),
            warm_gateway=gateway,
            tenant_gateway=gateway,
            startup_timeout_s=BOOT_TIMEOUT_S,
        )
        try:
            with BenchRedis(root / "redis", fsync="everysec") as redis:
                async with (
                    telegram_and_llm() as (telegram, llm),
                    running_pod_cluster(
                        root,
                        backend,
                        namespaces=("default", NS, names.DAEMON_NAMESPACE),
                        bookmark_interval=0.5,
                    ) as k8s,
                    bench_daemon(
                        root / "data",
                        redis,
                        telegram,
                        llm,
                        **kubernetes_daemon_env(k8s),
                        OTM_STATE_STORE="s3",
                        OTM_S3_BUCKET=BUCKET,
                        AWS_ENDPOINT_URL_S3=moto,
                        AWS_ENDPOINT_URL_STS=moto,
                        OTM_TENANT_STATE_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
                        **FAKE_AWS_ENV,
                    ) as daemon,
                ):
                    # --warm-telegram/--warm-up are local settings: warm pods run Telegram
                    # disabled until the bind (PodSettings.warm_telegram), no warm-up turn.
                    print(
                        f"kubernetes section (warm pods: Telegram disabled, no warm-up); "
                        f"daemon {shlex.quote(str(daemon.data_dir))}",
                        flush=True,
                    )
                    return await _local_rounds(LocalBench(daemon, telegram), rounds)
        finally:
            await store.close()
