"""Finding 2: after a real run, nothing under the data directory is readable by
another local user (registry, WAL, admin token, Redis AOF, agent state and logs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from otm.devtools.fake_telegram import FakeTelegram
from tests.support.daemon_fixtures import DaemonFactory

REPLY_TIMEOUT = 30.0


def exposed(root: Path) -> list[str]:
    out = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            out.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return out


def read_text(path: Path) -> str:
    return path.read_text()


def walk_names(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*")}


async def test_every_file_under_the_data_dir_is_private_after_a_real_run(
    start_daemon: DaemonFactory, telegram: FakeTelegram, data_dir: Path
) -> None:
    os.chmod(data_dir, 0o755)  # as a default umask would have created it
    # The embedded default: private Redis (AOF) under the data dir, no admin token
    # in the environment (the daemon generates data_dir/admin-token).
    daemon = await start_daemon(OTM_REDIS_URL="", OTM_ADMIN_TOKEN="")
    daemon.http.headers["Authorization"] = (  # type: ignore[union-attr]
        "Bearer " + read_text(data_dir / "admin-token").strip()
    )
    secret = await daemon.create_tenant("modes", "5005:modes")
    await daemon.send_text("modes", secret, 1, 42, "hello")
    await telegram.wait_for_messages("5005:modes", 2, REPLY_TIMEOUT, chat_id=42)
    status, _ = await daemon.api("POST", "/v1/tenants/modes/sleep")
    assert status == 200
    names = walk_names(data_dir)
    # The walk covers what the finding was about.
    for expected in ("registry.sqlite3", "admin-token", "agent.log", "password", "state"):
        assert expected in names, sorted(names)
    assert any(n.startswith("appendonly") for n in names), sorted(names)
    await daemon.stop()
    harness_log = f"{data_dir.name}/daemon.log"  # the test's capture of stderr, not the daemon's
    assert [e for e in exposed(data_dir) if not e.startswith(harness_log + " ")] == []
