"""File-mode hardening of the daemon process and its data directory.

The data directory holds the registry (bot tokens, webhook secrets, gateway
tokens), the admin token, the private Redis password and AOF, and every
agent's state and log. None of it is for other local users: the directory is
0700 and the daemon (with every child it starts: Redis, agents) runs under
umask 077, so whatever is created later is 0600/0700 too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def restrict_process_umask() -> int:
    """Set umask 077 for this process and its future children; returns the old one."""
    return os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` 0700 (or tighten an existing one to 0700).

    Only the directory itself is changed: files created by an older version
    keep their modes but are unreachable for other users behind it."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
