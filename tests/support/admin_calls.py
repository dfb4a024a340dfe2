"""Direct admin-API calls on a daemon subprocess: test setup and checks that do not go
through the CLI or the dashboard under test."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.daemon_proc import DaemonProc


def api(
    daemon: DaemonProc, method: str, path: str, body: Any = None, *, raw: bytes | None = None
) -> tuple[int, Any]:
    """Direct admin-API call (setup and checks independent of the CLI under test)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(
        daemon.admin_url + path,
        method=method,
        data=data,
        headers={"Authorization": f"Bearer {daemon.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = resp.read()
            return resp.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
