"""Real backing servers for tests: redis-server and moto, bound to 127.0.0.1."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from daemon.embedded_redis import EmbeddedRedis
from otm.devtools.fake_telegram import FakeTelegram
from otm.devtools.stub_llm import StubLLM

REPO_ROOT = Path(__file__).resolve().parents[2]

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextmanager
def running_redis(data_dir: Path, *, durable: bool = False) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir, durable=durable)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_moto() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def project_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess of the project (python -m daemon / otm)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def python_cmd(*args: Any) -> list[str]:
    return [sys.executable, *map(str, args)]


@asynccontextmanager
async def telegram_and_llm() -> AsyncIterator[tuple[FakeTelegram, StubLLM]]:
    """The fake Bot API and the stub LLM on loopback ports: what an agent under test talks to."""
    async with (
        FakeTelegram(host="127.0.0.1", port=0) as telegram,
        StubLLM(host="127.0.0.1", port=0) as llm,
    ):
        yield telegram, llm
