"""Shell scripts of the tenant pod's S3 containers (aws-cli image): restore, periodic sync,
final sync. Plain text builders, exercised for real by tests/k8s_runtime/test_sync_scripts.py.

Paths: the helpers see the state dir at /state and the workspace at /workspace; a warm pod's
sidecar learns its tenant and its tenant-scoped credentials from ``{BIND_DIR}/tenant.env``
(written by the warm bootstrap, rewritten on each credential refresh, so it is re-read
before every sync).

A warm pod's gateway is already running on its own state dir, so its sidecar restores and
syncs only what a bound gateway can take over: the tenant agent's ``agents/main/`` and the
workspace (``WARM_SYNCED``). The warm gateway's global database and its ``warm`` agent are
never uploaded over the tenant's.

SQLite side files (``-wal``, ``-shm``, ``-journal``) belong to one incarnation of their
database: paired with a newer database file they corrupt it or roll it back. So

* periodic syncs (the gateway is running: its files are live) never upload them, and first
  remove any the bucket still holds, so the database they upload stands alone;
* the final sync runs after the gateway exited (its files are at rest and belong together)
  and is authoritative: ``--delete`` removes what the state dir no longer has, a stale
  ``-wal`` included; it stops the periodic loop first so no periodic sync interleaves;
* a restore never brings back ``-shm`` (an index SQLite rebuilds).
"""

from __future__ import annotations

import shlex

BIND_DIR = "/run/otm"
HELPER_STATE = "/state"
HELPER_WORKSPACE = "/workspace"
RESTORED_MARKER = f"{HELPER_STATE}/.otm-restored"
"""Written by the restore once it completed; no sync uploads a state dir without it (a
restore cut short must never be uploaded over the tenant's files). Never synced itself."""

FINAL_SYNC_MARKER = f"{HELPER_STATE}/.otm-final-sync"
"""Written by the final sync: the periodic loop stops syncing. Never synced itself."""
PERIODIC_SYNC_MARKER = f"{HELPER_STATE}/.otm-syncing"
"""Present while a periodic sync runs, so the final sync can wait for it. Never synced."""
FINAL_SYNC_WAIT_S = 60
"""How long the final sync waits for a running periodic sync (it is bounded by its own
size; the pod's grace period reserves time for both, see manifests.PodSettings)."""

_STATE_EXCLUDES = (
    "--exclude openclaw.json --exclude 'openclaw.json.*' --exclude '*.lock'"
    " --exclude .otm-restored --exclude .otm-final-sync --exclude .otm-syncing"
)
_SHM = "--exclude '*-shm'"
_SQLITE_SIDE_FILES = f"--exclude '*-wal' --exclude '*-journal' {_SHM}"
# Regenerable or ephemeral: the 54 MB Control UI cache and lock/tmp files.
_UPLOAD_EXCLUDES = f"{_STATE_EXCLUDES} --exclude 'cache/*' --exclude 'tmp/*'"
_PERIODIC_EXCLUDES = f"{_UPLOAD_EXCLUDES} {_SQLITE_SIDE_FILES}"
_FINAL_EXCLUDES = f"{_UPLOAD_EXCLUDES} {_SHM}"
_WORKSPACE_EXCLUDES = "--exclude '*.workspace-state.json.*' --exclude '*workspace-state.json.tmp-*'"


TENANT_AGENT_DIR = "agents/main"
WARM_SYNCED = (f"state/{TENANT_AGENT_DIR}/", "workspace/")
"""The tenant prefix's sub-trees a warm pod restores and syncs."""


def warm_restore_script() -> str:
    """A claimed warm pod's restore: the tenant's agent and workspace only."""
    return (
        "set -eu\n"
        'base="s3://${S3_BUCKET}/${S3_PREFIX}"\n'
        f'aws s3 sync "${{base}}state/{TENANT_AGENT_DIR}/" {HELPER_STATE}/{TENANT_AGENT_DIR}/'
        f" {_STATE_EXCLUDES} {_SHM} --only-show-errors\n"
        f'aws s3 sync "${{base}}workspace/" {HELPER_WORKSPACE}/ {_WORKSPACE_EXCLUDES}'
        " --only-show-errors\n"
        f": > {RESTORED_MARKER}\n"
        'echo "restored ${base}"\n'
    )


def _upload_script(state_sub: str, *, final: bool) -> str:
    """Upload ``/state/{state_sub}`` and the workspace, only after the restore completed
    (its marker). Periodic: no SQLite side files, and none left in the bucket. Final:
    after the gateway exited, authoritative (``--delete``)."""
    src = f"{HELPER_STATE}/{state_sub}"
    dst = f'"${{base}}state/{state_sub}"'
    lines = [
        "set -u",
        f'[ -f {RESTORED_MARKER} ] || {{ echo "state not restored: not syncing"; exit 0; }}',
        'base="s3://${S3_BUCKET}/${S3_PREFIX}"',
    ]
    if final:
        delete = " --delete"
        excludes = _FINAL_EXCLUDES
        # Stop the periodic loop, and wait out a sync of it in progress.
        lines += [
            f"touch {FINAL_SYNC_MARKER}",
            f"i=0; while [ -f {PERIODIC_SYNC_MARKER} ] && [ $i -lt {FINAL_SYNC_WAIT_S * 5} ];"
            " do sleep 0.2; i=$((i+1)); done",
        ]
    else:
        delete = ""
        excludes = _PERIODIC_EXCLUDES
        lines.append(
            f"aws s3 rm {dst} --recursive --exclude '*'"
            " --include '*-wal' --include '*-journal' --include '*-shm' --only-show-errors"
            ' || { echo "sync state FAILED"; exit 1; }'
        )
    lines += [
        f"aws s3 sync {src} {dst} {excludes}{delete} --only-show-errors"
        ' && echo "sync state ok" || { echo "sync state FAILED"; exit 1; }',
        f'aws s3 sync {HELPER_WORKSPACE}/ "${{base}}workspace/" {_WORKSPACE_EXCLUDES}{delete}'
        " --only-show-errors"
        ' && echo "sync workspace ok" || { echo "sync workspace FAILED"; exit 1; }',
    ]
    return "\n".join(lines) + "\n"


def warm_sync_script() -> str:
    """A bound warm pod's periodic upload: the tenant's agent and workspace only, and only
    after the warm restore completed (its marker), as the cold sync."""
    return _upload_script(f"{TENANT_AGENT_DIR}/", final=False)


def restore_script() -> str:
    """Download the tenant's files. Fails (and is retried by the kubelet) on any S3 error:
    an agent started on empty state would diverge from its history. An empty prefix is
    not an error (a new tenant)."""
    return (
        "set -eu\n"
        'base="s3://${S3_BUCKET}/${S3_PREFIX}"\n'
        f'aws s3 sync "${{base}}state/" {HELPER_STATE}/ {_STATE_EXCLUDES} {_SHM}'
        " --only-show-errors\n"
        f'aws s3 sync "${{base}}workspace/" {HELPER_WORKSPACE}/ {_WORKSPACE_EXCLUDES}'
        " --only-show-errors\n"
        f": > {RESTORED_MARKER}\n"
        'echo "restored ${base}"\n'
    )


def sync_script() -> str:
    """One periodic upload of state and workspace (no --delete: a sync of a running
    gateway never removes data)."""
    return _upload_script("", final=False)


def final_sync_script(*, warm: bool) -> str:
    """The authoritative upload once the gateway exited (see the module docstring)."""
    return _upload_script(f"{TENANT_AGENT_DIR}/" if warm else "", final=True)


def sync_loop_script(interval_s: int, *, wait_for_bind: bool) -> str:
    """The sidecar: (warm pods: wait for the bind, restore) then sync every interval.
    SIGTERM ends the loop at once: the preStop hook has already done the final sync."""
    # The trap also ends the background sleep, which would otherwise outlive the loop.
    lines = ["trap 'kill $! 2>/dev/null; exit 0' TERM INT"]
    if wait_for_bind:
        sync = periodic_step(warm_sync_script())
        restore = shlex.quote(warm_restore_script())
        load = f"set -a; . {BIND_DIR}/tenant.env; set +a"
        lines += [
            f"while [ ! -f {BIND_DIR}/tenant.env ]; do sleep 0.2; done",
            load,
            f"if sh -c {restore}; then touch {BIND_DIR}/restored;"
            f" else touch {BIND_DIR}/restore-failed; exit 1; fi",
            # Re-read before each sync: the daemon refreshes the credentials in place.
            f"while true; do sleep {interval_s} & wait $!; {load}; {sync}; done",
        ]
    else:
        sync = periodic_step(sync_script())
        lines += [f"while true; do sleep {interval_s} & wait $!; {sync}; done"]
    return "\n".join(lines) + "\n"


def periodic_step(script: str) -> str:
    """One periodic sync, skipped once the final sync began, and marked while it runs."""
    return (
        f"[ -f {FINAL_SYNC_MARKER} ] || {{ touch {PERIODIC_SYNC_MARKER};"
        f" sh -c {shlex.quote(script)}; rm -f {PERIODIC_SYNC_MARKER}; }}"
    )


def final_sync_command(*, warm: bool) -> list[str]:
    """The sidecar's preStop (after the gateway exited): the final sync."""
    sync = final_sync_script(warm=warm)
    if warm:
        # An unbound warm pod has nothing to save.
        load = f"set -a; . {BIND_DIR}/tenant.env; set +a"
        sync = f"[ -f {BIND_DIR}/restored ] || exit 0\n{load}\n{sync}"
    return ["sh", "-c", sync]
