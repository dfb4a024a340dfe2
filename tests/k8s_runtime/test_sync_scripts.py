"""The restore/sync shell scripts of the pod's S3 containers, run by sh with a recording `aws`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from daemon.kube import manifests as m
from daemon.kube import pod_scripts

FAKE_AWS_S3 = Path(__file__).with_name("fake_aws_s3.py")
FAKE_AWS = """#!/bin/sh
echo "$*" >> "$AWS_LOG"
[ -z "$AWS_FAIL" ] || exit 1
"""


def _marker(tmp_path: Path) -> Path:
    """Where the scripts run here keep the restore marker (the pod's is in /state)."""
    return tmp_path / "otm-restored"


def _fake_aws_env(tmp_path: Path, aws_script: str = FAKE_AWS) -> dict[str, str]:
    """An env whose `aws` is ``aws_script``; a recording one logs to $AWS_LOG (tmp_path/aws.log)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    aws = bin_dir / "aws"
    aws.write_text(aws_script)
    aws.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "AWS_LOG": str(tmp_path / "aws.log")}


def _run(tmp_path: Path, script: str, **env: str) -> tuple[int, list[str]]:
    script = script.replace(m.RESTORED_MARKER, str(_marker(tmp_path)))
    log = tmp_path / "aws.log"
    log.unlink(missing_ok=True)
    full_env = {
        **_fake_aws_env(tmp_path),
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
        " --exclude openclaw.json.* --exclude *.lock --exclude .otm-restored"
        " --exclude .otm-final-sync --exclude .otm-syncing --exclude *-shm --only-show-errors",
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
    assert calls[1].startswith("s3 sync /state/agents/main/ s3://bucket-1/tenants/alice/state/")


def test_sync_uploads_without_config_locks_or_cache(tmp_path: Path) -> None:
    _marker(tmp_path).touch()
    code, calls = _run(tmp_path, m.sync_script())
    assert code == 0
    assert calls[1] == (
        "s3 sync /state/ s3://bucket-1/tenants/alice/state/ --exclude openclaw.json"
        " --exclude openclaw.json.* --exclude *.lock --exclude .otm-restored"
        " --exclude .otm-final-sync --exclude .otm-syncing"
        " --exclude cache/* --exclude tmp/* --exclude *-wal --exclude *-journal --exclude *-shm"
        " --only-show-errors"
    )
    assert calls[2].startswith("s3 sync /workspace/ s3://bucket-1/tenants/alice/workspace/")
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


def _warm_sidecar(
    tmp_path: Path, every_s: int, bucket: str, aws_script: str = FAKE_AWS
) -> tuple[subprocess.Popen[bytes], Path]:
    """The warm pod's sync sidecar running (sh, `aws` faked), waiting for a bind in the
    directory returned."""
    bind = tmp_path / "bind"
    bind.mkdir()
    script = m.sync_loop_script(every_s, wait_for_bind=True).replace(m.BIND_DIR, str(bind))
    script = script.replace(m.RESTORED_MARKER, str(_marker(tmp_path)))
    env = {**_fake_aws_env(tmp_path, aws_script), "S3_BUCKET": bucket}
    return subprocess.Popen(["sh", "-c", script], env=env), bind


def _wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(100):  # bounded: 10 s
        if condition():
            return
        subprocess.run(["sleep", "0.1"], check=True)


def test_warm_sidecar_restores_after_the_bind_then_loops(tmp_path: Path) -> None:
    proc, bind = _warm_sidecar(tmp_path, 60, "bucket-1")
    try:
        # Atomically, as the warm bootstrap writes it (writeAtomic): the loop may source
        # the file as soon as it exists, so a half-written one would be read empty.
        (bind / "tenant.env.tmp").write_text("S3_PREFIX='tenants/carol/'\n")
        (bind / "tenant.env.tmp").rename(bind / "tenant.env")
        _wait_until((bind / "restored").exists)
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
    aws_script = '#!/bin/sh\necho "$AWS_ACCESS_KEY_ID $*" >> "$AWS_LOG"\n'
    proc, bind = _warm_sidecar(tmp_path, 1, "b", aws_script)
    log = tmp_path / "aws.log"
    try:
        (bind / "tenant.env").write_text("S3_PREFIX='tenants/carol/'\nAWS_ACCESS_KEY_ID='OLD'\n")
        _wait_until((bind / "restored").exists)
        (bind / "tenant.env").write_text("S3_PREFIX='tenants/carol/'\nAWS_ACCESS_KEY_ID='NEW'\n")
        _wait_until(lambda: "NEW s3 sync /state/" in log.read_text())
        lines = log.read_text().splitlines()
        assert lines[0].startswith("OLD s3 sync s3://b/tenants/carol/state/agents/main/")
        assert any(line.startswith("NEW s3 sync /state/agents/main/") for line in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the scripts against a bucket on disk (fake_aws_s3.py: aws-cli's sync/rm semantics) ------


def _pod_dir(tmp_path: Path, name: str) -> Path:
    """A pod's view: <dir>/state and <dir>/workspace stand for /state and /workspace."""
    pod = tmp_path / name
    (pod / "state").mkdir(parents=True)
    (pod / "workspace").mkdir()
    return pod


def _on_disk(tmp_path: Path, pod: Path, script: str) -> tuple[str, dict[str, str]]:
    """The script with its pod paths under ``pod``, and an env whose `aws` is the fake."""
    script = script.replace(f"{pod_scripts.HELPER_STATE}/", f"{pod}/state/")
    script = script.replace(f"{pod_scripts.HELPER_WORKSPACE}/", f"{pod}/workspace/")
    env = {
        **_fake_aws_env(tmp_path, f'#!/bin/sh\nexec {sys.executable} {FAKE_AWS_S3} "$@"\n'),
        "FAKE_S3_ROOT": str(tmp_path / "s3"),
        "S3_BUCKET": "bucket-1",
        "S3_PREFIX": "tenants/alice/",
    }
    return script, env


def _run_on_disk(tmp_path: Path, pod: Path, script: str) -> None:
    script, env = _on_disk(tmp_path, pod, script)
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_restore_never_pairs_a_database_with_a_stale_wal(tmp_path: Path) -> None:
    db = "state/openclaw.sqlite"
    pod1 = _pod_dir(tmp_path, "pod1")
    _run_on_disk(tmp_path, pod1, m.restore_script())
    # The gateway runs: its database has a live WAL (and shm) when a periodic sync comes.
    _write(pod1 / db, "db-v1")
    _write(pod1 / f"{db}-wal", "wal-of-v1")
    _write(pod1 / f"{db}-shm", "shm-of-v1")
    _run_on_disk(tmp_path, pod1, m.sync_script())
    # It exits cleanly: checkpointed, WAL and shm gone; the final sync runs after that.
    _write(pod1 / db, "db-v2")
    (pod1 / f"{db}-wal").unlink()
    (pod1 / f"{db}-shm").unlink()
    _run_on_disk(tmp_path, pod1, m.final_sync_command(warm=False)[2])

    pod2 = _pod_dir(tmp_path, "pod2")
    _run_on_disk(tmp_path, pod2, m.restore_script())
    assert (pod2 / db).read_text() == "db-v2"
    assert not (pod2 / f"{db}-wal").exists()
    assert not (pod2 / f"{db}-shm").exists()


def test_a_periodic_sync_leaves_no_older_wal_beside_the_database_it_uploads(
    tmp_path: Path,
) -> None:
    """A gateway killed before its final sync leaves a WAL that belongs to its database;
    once a later pod's periodic sync uploads a newer database, that WAL must be gone."""
    db = "state/agents/main/agent/openclaw-agent.sqlite"
    pod1 = _pod_dir(tmp_path, "pod1")
    _run_on_disk(tmp_path, pod1, m.restore_script())
    _write(pod1 / db, "db-v1")
    _write(pod1 / f"{db}-wal", "wal-of-v1")  # the gateway crashed: the pair is at rest
    _run_on_disk(tmp_path, pod1, m.final_sync_command(warm=False)[2])

    pod2 = _pod_dir(tmp_path, "pod2")
    _run_on_disk(tmp_path, pod2, m.restore_script())
    assert (pod2 / f"{db}-wal").read_text() == "wal-of-v1"  # recovered with its database
    _write(pod2 / db, "db-v2")  # replayed, checkpointed and written since
    (pod2 / f"{db}-wal").write_text("live-wal-of-v2")
    _run_on_disk(tmp_path, pod2, m.sync_script())  # then pod2's node is lost: no final sync

    pod3 = _pod_dir(tmp_path, "pod3")
    _run_on_disk(tmp_path, pod3, m.restore_script())
    assert (pod3 / db).read_text() == "db-v2"
    assert not (pod3 / f"{db}-wal").exists()


def test_the_final_sync_removes_what_the_tenant_deleted(tmp_path: Path) -> None:
    pod1 = _pod_dir(tmp_path, "pod1")
    _run_on_disk(tmp_path, pod1, m.restore_script())
    _write(pod1 / "workspace/notes.md", "draft")
    _write(pod1 / "state/media/outbound/a.png", "png")
    _run_on_disk(tmp_path, pod1, m.sync_script())
    (pod1 / "workspace/notes.md").unlink()
    (pod1 / "state/media/outbound/a.png").unlink()
    _run_on_disk(tmp_path, pod1, m.final_sync_command(warm=False)[2])

    pod2 = _pod_dir(tmp_path, "pod2")
    _run_on_disk(tmp_path, pod2, m.restore_script())
    assert not (pod2 / "workspace/notes.md").exists()
    assert not (pod2 / "state/media/outbound/a.png").exists()


def test_the_final_sync_waits_out_a_periodic_sync_and_stops_the_loop(tmp_path: Path) -> None:
    pod = _pod_dir(tmp_path, "pod")
    _run_on_disk(tmp_path, pod, m.restore_script())
    final = pod_scripts.FINAL_SYNC_MARKER.replace(f"{pod_scripts.HELPER_STATE}/", f"{pod}/state/")
    running = pod_scripts.PERIODIC_SYNC_MARKER.replace(
        f"{pod_scripts.HELPER_STATE}/", f"{pod}/state/"
    )
    Path(running).touch()  # a periodic sync in progress
    script, env = _on_disk(tmp_path, pod, m.final_sync_command(warm=False)[2])
    proc = subprocess.Popen(["sh", "-c", script], env=env)
    try:
        _wait_until(Path(final).exists)
        assert Path(final).exists() and proc.poll() is None  # waiting for the periodic one
    finally:
        Path(running).unlink()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    # Once the final sync began, the loop's periodic syncs do nothing.
    _write(pod / "state/late.txt", "written after the final sync")
    _run_on_disk(tmp_path, pod, pod_scripts.periodic_step(m.sync_script()))
    assert not list((tmp_path / "s3").rglob("late.txt"))
