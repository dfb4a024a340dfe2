"""What of a tenant's saved agent state a pre-booted (warm) gateway can and cannot take over.

A warm gateway has been running on its own state dir; binding it to a tenant copies in the
tenant's **agent** (``agents/main/``: sessions, transcripts, memory index) and its
**workspace**, which the gateway opens for the first time after the config rewrite. The
tenant's **global** database cannot be swapped under a running gateway: OpenClaw's
``state/openclaw.sqlite`` (the stand-in agent's ``agent-stub.sqlite``) stays the warm one.
What that database holds, and why losing it is harmless or handled:

- Telegram ``update_id`` de-duplication: otm's router de-duplicates updates before any
  agent sees them, and deletes a buffered update only after the agent acked it.
- Pairing approvals: otm renders ``dmPolicy: open`` for every tenant, so there are none.
- Delivery state (the "I couldn't confirm whether my previous reply reached this chat"
  notice after a failed send): losing it loses only that notice.
- Cron jobs the gateway declares itself (``heartbeat:main``, ``skill-collection-review:main``,
  measured on 2026.9.6): the warm gateway declares them for ``main`` when the bind adds it.
- **The ingress spool of updates acked but not processed yet, and cron jobs someone
  created** (no declaration key): these would be lost. ``warm_blockers`` finds them in the
  tenant's snapshot, and the runtime then starts the tenant cold (its gateway opens its own
  global database and processes them).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

TENANT_AGENT_DIR = Path("agents") / "main"
WORKSPACE_DIR = Path("workspace")
CARRIED = (TENANT_AGENT_DIR, WORKSPACE_DIR)
"""Snapshot paths a warm bind copies into the warm gateway's state dir."""

OPENCLAW_GLOBAL_DB = Path("state") / "openclaw.sqlite"
STUB_GLOBAL_DB = Path("agent-stub.sqlite")

# (database, what, query counting rows a warm gateway would drop)
_CHECKS = (
    (
        OPENCLAW_GLOBAL_DB,
        "unprocessed ingress updates",
        "SELECT count(*) FROM channel_ingress_events"
        " WHERE completed_at IS NULL AND failed_at IS NULL",
    ),
    # Declared jobs (``declaration_key`` like ``heartbeat:main``) are re-declared by every
    # gateway for its agents; only jobs someone created (no declaration) would be lost.
    (
        OPENCLAW_GLOBAL_DB,
        "cron jobs",
        "SELECT count(*) FROM cron_jobs WHERE enabled != 0 AND declaration_key IS NULL",
    ),
    (STUB_GLOBAL_DB, "unprocessed ingress updates", "SELECT count(*) FROM updates WHERE done = 0"),
)


def warm_blockers(state_dir: Path) -> list[str]:
    """Why the tenant state unpacked at ``state_dir`` must not be bound to a warm gateway
    (empty: it may). A database or table that is not there blocks nothing; one that cannot
    be read blocks (the cold path is always safe)."""
    blockers: list[str] = []
    for relative, what, query in _CHECKS:
        path = state_dir / relative
        if not path.is_file():
            continue
        try:
            # Read-only and immutable: never write (or create a WAL) in the snapshot copy.
            with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
                (count,) = db.execute(query).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                continue
            blockers.append(f"{relative}: unreadable ({exc})")
            continue
        except sqlite3.DatabaseError as exc:
            blockers.append(f"{relative}: unreadable ({exc})")
            continue
        if count:
            blockers.append(f"{count} {what} in {relative}")
    return blockers
