"""The README's scripts as a user runs them: `run-prod-local.sh` brings the daemon up on
DynamoDB + S3 (a local moto server) and its own Redis and takes a tenant; a second
`run-local.sh` on busy ports says so and how to get out of it, instead of claiming
that its fake Telegram is listening."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.support.servers import REPO_ROOT, project_env, python_cmd

READY_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = project_env(OTM_DATA_DIR=str(data_dir), **extra)
    for name in list(env):
        if name.startswith("AWS_"):
            del env[name]  # the script must supply everything itself
    return env


@pytest.fixture
def script_group() -> Iterator[list[subprocess.Popen[str]]]:
    """Scripts started in their own process group; the whole group is ended at teardown."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, seen: list[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"script exited early: {''.join(seen)}")
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} within {READY_TIMEOUT_S}s: {''.join(seen)}")


def test_run_prod_local_serves_a_tenant_from_dynamodb_and_s3(
    tmp_path: Path, script_group: list[subprocess.Popen[str]]
) -> None:
    moto_port = _free_port()
    data_dir = tmp_path / "otm"
    env = _script_env(
        data_dir,
        OTM_MOTO_PORT=str(moto_port),
        OTM_LOCAL_REDIS_PORT=str(_free_port()),
        OTM_FAKE_TELEGRAM_PORT=str(_free_port()),
    )
    proc = subprocess.Popen(
        ["./scripts/run-prod-local.sh", "--router-port", "0", "--admin-port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    script_group.append(proc)
    seen: list[str] = []
    _wait_for_line(proc, "otm daemon ready", seen)
    otm = [str(REPO_ROOT / ".venv" / "bin" / "otm")]
    if not Path(otm[0]).exists():
        otm = python_cmd("-m", "otm")
    created = subprocess.run(
        [*otm, "tenant", "create", "prodlocal", "--bot-token-stdin"],
        input="1701:prod-local",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    chat = subprocess.run(
        [*otm, "chat", "prodlocal", "hello", "--timeout", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert chat.returncode == 0, chat.stderr
    # The stand-in agent answers through the model gateway in front of the stub LLM.
    assert chat.stdout.strip().startswith("echo: hello"), chat.stdout
    slept = subprocess.run(
        [*otm, "tenant", "sleep", "prodlocal"], env=env, capture_output=True, text=True, timeout=90
    )
    assert slept.returncode == 0, slept.stderr
    # The record is in DynamoDB and the state snapshot in S3, on the script's moto server.
    aws = {
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "endpoint_url": f"http://127.0.0.1:{moto_port}",
    }
    dynamodb = boto3.client("dynamodb", **aws)
    item = dynamodb.get_item(TableName="otm-local-tenants", Key={"tenant_id": {"S": "prodlocal"}})
    assert item["Item"]["status"]["S"] == "idle"
    s3 = boto3.client("s3", **aws)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="otm-local-state").get("Contents", [])]
    assert "tenants/prodlocal/snapshots/latest.tar.gz" in keys
    dynamodb.close()
    s3.close()


def test_second_run_local_on_busy_ports_says_so(
    tmp_path: Path, script_group: list[subprocess.Popen[str]]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            ["./scripts/run-local.sh"],
            cwd=REPO_ROOT,
            env=_script_env(tmp_path / "otm", OTM_FAKE_TELEGRAM_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert "fake Telegram Bot API on" not in result.stdout
    assert f"could not start on 127.0.0.1:{port}" in result.stderr
    assert "--router-port" in result.stderr and "OTM_FAKE_TELEGRAM_PORT" in result.stderr


def test_daemon_on_a_busy_port_names_the_way_out(tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            python_cmd("-m", "daemon"),
            cwd=REPO_ROOT,
            env=project_env(
                OTM_DATA_DIR=str(tmp_path),
                OTM_REDIS_URL=redis_url,
                OTM_ROUTER_PORT=str(port),
                OTM_ADMIN_PORT="0",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "--router-port" in result.stderr and "OTM_ROUTER_PORT" in result.stderr
