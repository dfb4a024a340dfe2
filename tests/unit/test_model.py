from __future__ import annotations

from pathlib import Path

import pytest

from daemon.embedded_redis import EmbeddedRedis, RedisServerMissing
from daemon.model import (
    InvalidTenantId,
    Tenant,
    TenantStatus,
    check_changes,
    tenant_from_record,
    tenant_to_record,
    validate_labels,
    validate_tenant_id,
)


@pytest.mark.parametrize("good", ["a", "acme", "a-b-1", "0", "x" * 40])
def test_valid_tenant_ids(good: str) -> None:
    assert validate_tenant_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "A", "-a", "a-", "a_b", "a.b", "x" * 41, "ü", "a b", "../x", "warm-abc"]
)
def test_invalid_tenant_ids(bad: str) -> None:
    with pytest.raises(InvalidTenantId, match="invalid tenant id"):
        validate_tenant_id(bad)


def test_public_view_hides_secrets_and_repr_too() -> None:
    t = Tenant(tenant_id="acme", bot_token="1:SECRET")
    public = t.public()
    assert not {"bot_token", "webhook_secret", "gateway_token", "hooks_token"} & set(public)
    assert public["has_bot_token"] is True
    assert "SECRET" not in repr(t) and t.webhook_secret not in repr(t)


def test_record_roundtrip_keeps_everything() -> None:
    t = Tenant(tenant_id="acme", bot_token="1:x", labels={"tier": "gold"}, idle_timeout_s=90)
    assert tenant_from_record(tenant_to_record(t)) == t


def test_check_changes() -> None:
    assert check_changes({"status": "running"}) == {"status": TenantStatus.RUNNING}
    with pytest.raises(ValueError, match="cannot update tenant_id"):
        check_changes({"tenant_id": "x"})
    with pytest.raises(ValueError):
        check_changes({"status": "sideways"})


def test_labels_follow_kubernetes_rules() -> None:
    assert validate_labels({"team": "a-b", "x/y": ""}) == {"team": "a-b", "x/y": ""}
    for bad in ({"a": "b c"}, {"": "x"}, {"a": 1}, ["a"]):
        with pytest.raises(ValueError):
            validate_labels(bad)


def test_missing_redis_binary_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(RedisServerMissing, match="apt-get install -y redis-server"):
        EmbeddedRedis(tmp_path, binary="redis-server-that-does-not-exist").start()


def test_private_redis_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    """A SIGKILLed daemon must not leave its redis-server running on its data dir."""
    import os
    import signal
    import subprocess
    import time

    from tests.support.servers import project_env, python_cmd

    code = (
        "import sys, time; from pathlib import Path; "
        "from daemon.embedded_redis import EmbeddedRedis; "
        f"r = EmbeddedRedis(Path({str(tmp_path)!r})); r.start(); "
        "print(r.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen(
        python_cmd("-c", code), env=project_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(redis_pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(redis_pid, signal.SIGKILL)
        raise AssertionError("redis-server outlived its SIGKILLed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
