"""Finding 1: the private redis-server is not open to other local processes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import redis

from daemon.embedded_redis import CONFIG_FILE, PASSWORD_FILE, REDIS_USER, EmbeddedRedis
from daemon.settings import Settings, describe

pytestmark = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="needs redis-cli")


def _cli(port: int, *args: str, password: str | None = None) -> str:
    """Another process on the machine (a local user, an agent) talking to the server."""
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password is not None:
        env["REDISCLI_AUTH"] = password
        args = ("--user", REDIS_USER, *args)
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        env=env,
        check=False,
    )
    return done.stdout + done.stderr


def test_local_attacker_cannot_read_or_write_the_daemons_keys(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", durable=True)
    server.start()
    try:
        owner = redis.Redis.from_url(server.url)
        owner.set("otm:endpoint:alpha", "http://127.0.0.1:1/telegram-webhook")
        owner.close()

        stolen = _cli(server.port, "GET", "otm:endpoint:alpha")
        assert "127.0.0.1:1" not in stolen
        assert "NOAUTH" in stolen, stolen
        hijack = _cli(server.port, "SET", "otm:endpoint:alpha", "http://evil/")
        assert "NOAUTH" in hijack, hijack
        # Guessing an empty password does not help either.
        assert "WRONGPASS" in _cli(server.port, "AUTH", "default", "")

        # The daemon's own client (the password from the 0600 file) still works.
        assert "127.0.0.1:1" in _cli(
            server.port, "GET", "otm:endpoint:alpha", password=server.password
        )
        # The password is never on the server's command line (world-readable via ps).
        assert server.process is not None
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert server.password.encode() not in cmdline
    finally:
        server.stop()


def test_password_config_and_aof_are_private(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    server = EmbeddedRedis(redis_dir, durable=True)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        # MULTI/EXEC (and every Lua script) is replayed from the AOF at restart: an ACL
        # that denies the replaying user silently drops it (the buffers would be lost).
        # (Two writes each: Redis propagates a single write without MULTI/EXEC.)
        client.eval(
            "redis.call('set', KEYS[1], 'from-lua'); redis.call('set', KEYS[2], 'too')",
            2,
            "lua",
            "lua2",
        )
        with client.pipeline(transaction=True) as pipe:
            pipe.set("multi", "from-exec").set("multi2", "too").execute()
        client.close()
    finally:
        server.stop()
    assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
    for name in (PASSWORD_FILE, CONFIG_FILE):
        assert stat.S_IMODE((redis_dir / name).stat().st_mode) == 0o600, name
    for path in redis_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"

    # Same data dir, same password: a restarted daemon reads its AOF back.
    again = EmbeddedRedis(redis_dir, durable=True)
    again.start()
    try:
        client = redis.Redis.from_url(again.url)
        assert client.get("k") == b"v"
        assert client.get("lua") == b"from-lua"
        assert client.get("multi") == b"from-exec"
        assert client.get("lua2") == client.get("multi2") == b"too"
        client.close()
    finally:
        again.stop()


def test_production_redis_credentials_come_from_settings_or_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret-from-file\n")
    settings = Settings(
        redis_url="rediss://redis.example:6380/0",
        redis_username="otm-daemon",
        redis_password_file=secret,
    )
    assert settings.redis_credentials() == {
        "username": "otm-daemon",
        "password": "s3cret-from-file",
    }
    shown = describe(Settings(redis_password="p"))
    assert shown["redis_password"] == "***"
