"""A real daemon subprocess for TUI tests and the screenshot script, and direct admin
API calls for setup and checks (independent of the code under test)."""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager
from pathlib import Path

from tests.support.daemon_proc import DaemonProc, daemon_env, running_daemon


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon(
    data_dir: Path, redis_url: str, admin_port: int = 0
) -> AbstractContextManager[DaemonProc]:
    env = daemon_env(
        data_dir, OTM_REDIS_URL=redis_url, OTM_ADMIN_PORT=str(admin_port), OTM_ROUTER_PORT="0"
    )
    return running_daemon(data_dir, env=env, ready_timeout=30.0)
