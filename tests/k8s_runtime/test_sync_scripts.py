"""The restore/sync shell scripts of the pod's S3 containers, run by sh with a recording `aws`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from daemon.kube import manifests as m
from daemon.kube import pod_scripts

FAKE_AWS = """#!/bin/sh
echo "$*" >> "$AWS_LOG"
[ -z "$AWS_FAIL" ] || exit 1
"""


def _marker(tmp_path: Path) -> Path:
    """Where the scripts run here keep the restore marker (the pod's is in /state)."""
    return tmp_path / "otm-restored"


def _run(tmp_path: Path, script: str, **env: str) -> tuple[int, list[str]]:
    script = script.replace(m.RESTORED_MARKER, str(_marker(tmp_path)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS)
    aws.chmod(0o755)
    log = tmp_path / "aws.log"
    log.unlink(missing_ok=True)
    full_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AWS_LOG": str(log),
        "S3_BUCKET": "bucket-1",
        "S3_PREFIX": "tenants/alice/",
        **env,
    }
    done = subprocess.run(["sh", "-c", script], env=full_env, capture_output=True, timeout=10)
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, calls


def test_restore_downloads_state_and_workspace(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, m.restore_script())
    assert code == 0
    assert calls == [
        "s3 sync s3://bucket-1/tenants/alice/state/ /state/ --exclude openclaw.json"
        " --exclude openclaw.json.* --exclude *.lock --exclude .otm-restored --only-show-errors",
        "s3 sync s3://bucket-1/tenants/alice/workspace/ /workspace/"
        " --exclude *.workspace-state.json.* --exclude *workspace-state.json.tmp-*"
        " --only-show-errors",
    ]
    assert _marker(tmp_path).exists()


def test_restore_fails_the_container_on_an_s3_error(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, m.restore_script(), AWS_FAIL="1")
    assert code != 0 and len(calls) == 1  # stops at the first failure
    assert not _marker(tmp_path).exists()  # so nothing of it is ever synced back


def test_sync_uploads_nothing_before_the_restore_completed(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, m.sync_script())
    assert (code, calls) == (0, [])
    code, calls = _run(tmp_path, m.final_sync_command(warm=False)[2])
    assert (code, calls) == (0, [])


def test_warm_sync_uploads_nothing_before_the_warm_restore_completed(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, pod_scripts.warm_sync_script())
    assert (code, calls) == (0, [])
    code, _ = _run(tmp_path, pod_scripts.warm_restore_script(), AWS_FAIL="1")
    assert code != 0 and not _marker(tmp_path).exists()  # a cut-short restore: no marker
    code, calls = _run(tmp_path, pod_scripts.warm_sync_script())
    assert (code, calls) == (0, [])
    assert _run(tmp_path, pod_scripts.warm_restore_script())[0] == 0
    assert _marker(tmp_path).exists()
    code, calls = _run(tmp_path, pod_scripts.warm_sync_script())
    assert code == 0
    assert calls[0].startswith("s3 sync /state/agents/main/ s3://bucket-1/tenants/alice/state/")


def test_sync_uploads_without_config_locks_or_cache(tmp_path: Path) -> None:
    _marker(tmp_path).touch()
    code, calls = _run(tmp_path, m.sync_script())
    assert code == 0
    assert calls[0] == (
        "s3 sync /state/ s3://bucket-1/tenants/alice/state/ --exclude openclaw.json"
        " --exclude openclaw.json.* --exclude *.lock --exclude .otm-restored"
        " --exclude cache/* --exclude tmp/*"
        " --only-show-errors"
    )
    assert calls[1].startswith("s3 sync /workspace/ s3://bucket-1/tenants/alice/workspace/")
    code, _ = _run(tmp_path, m.sync_script(), AWS_FAIL="1")
    assert code != 0


def test_warm_final_sync_does_nothing_before_a_bind(tmp_path: Path) -> None:
    script = m.final_sync_command(warm=True)[2].replace(m.BIND_DIR, str(tmp_path / "bind"))
    code, calls = _run(tmp_path, script)
    assert (code, calls) == (0, [])
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "tenant.env").write_text("S3_PREFIX='tenants/bob/'\n")
    (bind / "restored").touch()
    _marker(tmp_path).touch()
    code, calls = _run(tmp_path, script, S3_PREFIX="")
    assert code == 0
    # Only the tenant's agent and workspace: never the warm gateway's global DB or agent.
    assert calls[0].startswith(
        "s3 sync /state/agents/main/ s3://bucket-1/tenants/bob/state/agents/main/"
    )
    assert calls[1].startswith("s3 sync /workspace/ s3://bucket-1/tenants/bob/workspace/")


def test_warm_sidecar_restores_after_the_bind_then_loops(tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    script = m.sync_loop_script(60, wait_for_bind=True).replace(m.BIND_DIR, str(bind))
    script = script.replace(m.RESTORED_MARKER, str(_marker(tmp_path)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AWS_LOG": str(tmp_path / "aws.log"),
        "S3_BUCKET": "bucket-1",
    }
    proc = subprocess.Popen(["sh", "-c", script], env=env)
    try:
        # Atomically, as the warm bootstrap writes it (writeAtomic): the loop may source
        # the file as soon as it exists, so a half-written one would be read empty.
        (bind / "tenant.env.tmp").write_text("S3_PREFIX='tenants/carol/'\n")
        (bind / "tenant.env.tmp").rename(bind / "tenant.env")
        for _ in range(100):  # bounded: 10 s
            if (bind / "restored").exists():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert (bind / "restored").exists()
        calls = (tmp_path / "aws.log").read_text().splitlines()
        assert calls[0].startswith(
            "s3 sync s3://bucket-1/tenants/carol/state/agents/main/ /state/agents/main/"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0  # SIGTERM ends the loop cleanly (preStop did the sync)


def test_warm_sidecar_rereads_refreshed_credentials_before_each_sync(tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    script = m.sync_loop_script(1, wait_for_bind=True).replace(m.BIND_DIR, str(bind))
    script = script.replace(m.RESTORED_MARKER, str(_marker(tmp_path)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text('#!/bin/sh\necho "$AWS_ACCESS_KEY_ID $*" >> "$AWS_LOG"\n')
    (bin_dir / "aws").chmod(0o755)
    log = tmp_path / "aws.log"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "AWS_LOG": str(log), "S3_BUCKET": "b"}
    proc = subprocess.Popen(["sh", "-c", script], env=env)
    try:
        (bind / "tenant.env").write_text("S3_PREFIX='tenants/carol/'\nAWS_ACCESS_KEY_ID='OLD'\n")
        for _ in range(100):  # bounded: 10 s
            if (bind / "restored").exists():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        (bind / "tenant.env").write_text("S3_PREFIX='tenants/carol/'\nAWS_ACCESS_KEY_ID='NEW'\n")
        for _ in range(100):
            if "NEW s3 sync /state/" in log.read_text():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        lines = log.read_text().splitlines()
        assert lines[0].startswith("OLD s3 sync s3://b/tenants/carol/state/agents/main/")
        assert any(line.startswith("NEW s3 sync /state/agents/main/") for line in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
