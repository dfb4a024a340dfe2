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
"""

from __future__ import annotations

import shlex

BIND_DIR = "/run/otm"
HELPER_STATE = "/state"
HELPER_WORKSPACE = "/workspace"
RESTORED_MARKER = f"{HELPER_STATE}/.otm-restored"
"""Written by the restore once it completed; no sync uploads a state dir without it (a
restore cut short must never be uploaded over the tenant's files). Never synced itself."""

_STATE_EXCLUDES = (
    "--exclude openclaw.json --exclude 'openclaw.json.*' --exclude '*.lock' --exclude .otm-restored"
)
# Regenerable or ephemeral: the 54 MB Control UI cache and lock/tmp files.
_UPLOAD_EXCLUDES = f"{_STATE_EXCLUDES} --exclude 'cache/*' --exclude 'tmp/*'"
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
        f" {_STATE_EXCLUDES} --only-show-errors\n"
        f'aws s3 sync "${{base}}workspace/" {HELPER_WORKSPACE}/ {_WORKSPACE_EXCLUDES}'
        " --only-show-errors\n"
        f": > {RESTORED_MARKER}\n"
        'echo "restored ${base}"\n'
    )


def warm_sync_script() -> str:
    """A bound warm pod's upload: the tenant's agent and workspace only, and only after
    the warm restore completed (its marker), as the cold sync."""
    return (
        "set -u\n"
        f'[ -f {RESTORED_MARKER} ] || {{ echo "state not restored: not syncing"; exit 0; }}\n'
        'base="s3://${S3_BUCKET}/${S3_PREFIX}"\n'
        f'aws s3 sync {HELPER_STATE}/{TENANT_AGENT_DIR}/ "${{base}}state/{TENANT_AGENT_DIR}/"'
        f" {_UPLOAD_EXCLUDES} --only-show-errors"
        ' && echo "sync state ok" || { echo "sync state FAILED"; exit 1; }\n'
        f'aws s3 sync {HELPER_WORKSPACE}/ "${{base}}workspace/" {_WORKSPACE_EXCLUDES}'
        " --only-show-errors"
        ' && echo "sync workspace ok" || { echo "sync workspace FAILED"; exit 1; }\n'
    )


def restore_script() -> str:
    """Download the tenant's files. Fails (and is retried by the kubelet) on any S3 error:
    an agent started on empty state would diverge from its history. An empty prefix is
    not an error (a new tenant)."""
    return (
        "set -eu\n"
        'base="s3://${S3_BUCKET}/${S3_PREFIX}"\n'
        f'aws s3 sync "${{base}}state/" {HELPER_STATE}/ {_STATE_EXCLUDES} --only-show-errors\n'
        f'aws s3 sync "${{base}}workspace/" {HELPER_WORKSPACE}/ {_WORKSPACE_EXCLUDES}'
        " --only-show-errors\n"
        f": > {RESTORED_MARKER}\n"
        'echo "restored ${base}"\n'
    )


def sync_script() -> str:
    """One upload of state and workspace (no --delete: a bad sync never removes data)."""
    return (
        "set -u\n"
        f'[ -f {RESTORED_MARKER} ] || {{ echo "state not restored: not syncing"; exit 0; }}\n'
        'base="s3://${S3_BUCKET}/${S3_PREFIX}"\n'
        f'aws s3 sync {HELPER_STATE}/ "${{base}}state/" {_UPLOAD_EXCLUDES} --only-show-errors'
        ' && echo "sync state ok" || { echo "sync state FAILED"; exit 1; }\n'
        f'aws s3 sync {HELPER_WORKSPACE}/ "${{base}}workspace/" {_WORKSPACE_EXCLUDES}'
        " --only-show-errors"
        ' && echo "sync workspace ok" || { echo "sync workspace FAILED"; exit 1; }\n'
    )


def sync_loop_script(interval_s: int, *, wait_for_bind: bool) -> str:
    """The sidecar: (warm pods: wait for the bind, restore) then sync every interval.
    SIGTERM ends the loop at once: the preStop hook has already done the final sync."""
    # The trap also ends the background sleep, which would otherwise outlive the loop.
    lines = ["trap 'kill $! 2>/dev/null; exit 0' TERM INT"]
    if wait_for_bind:
        sync = shlex.quote(warm_sync_script())
        restore = shlex.quote(warm_restore_script())
        load = f"set -a; . {BIND_DIR}/tenant.env; set +a"
        lines += [
            f"while [ ! -f {BIND_DIR}/tenant.env ]; do sleep 0.2; done",
            load,
            f"if sh -c {restore}; then touch {BIND_DIR}/restored;"
            f" else touch {BIND_DIR}/restore-failed; exit 1; fi",
            # Re-read before each sync: the daemon refreshes the credentials in place.
            f"while true; do sleep {interval_s} & wait $!; {load}; sh -c {sync}; done",
        ]
    else:
        sync = shlex.quote(sync_script())
        lines += [f"while true; do sleep {interval_s} & wait $!; sh -c {sync}; done"]
    return "\n".join(lines) + "\n"


def final_sync_command(*, warm: bool) -> list[str]:
    sync = warm_sync_script() if warm else sync_script()
    if warm:
        # An unbound warm pod has nothing to save.
        load = f"set -a; . {BIND_DIR}/tenant.env; set +a"
        sync = f"[ -f {BIND_DIR}/restored ] || exit 0\n{load}\n{sync}"
    return ["sh", "-c", sync]
