"""`otm logs -f` that follows a tenant across sleep and wake (and waits for its first boot).

A runtime's follow stream ends with the agent's run (the process exits, the pod goes).
Like ``kubectl logs -f`` on a controller, the operator wants the *tenant's* log: after a
run ends, this waits for the tenant's next ``waking``/``running`` event and follows the
new run from where the previous one stopped. Lines already sent are not sent again:
the local runtime keeps one timestamped file across runs (lines up to the last one sent
are skipped by their timestamp); a new Kubernetes pod starts a new log (asked only for
lines since the previous run ended).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from daemon.log_options import DEFAULT_LOG_OPTIONS, LogOptions
from daemon.msgpath.pubsub import Subscription
from daemon.ports import Runtime

BOOT_EVENTS = frozenset({"waking", "running"})
IDLE_CHECK_S = 15.0
"""How often a follower that waits for the next boot checks that its client is still there."""
WINDOW_SLACK_S = 2.0
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ")


def line_stamp(line: str) -> str | None:
    """The ISO-8601 UTC prefix the local runtime puts on every line (sortable as text)."""
    match = _STAMP.match(line)
    return match.group(0) if match else None


async def follow_across_runs(
    runtime: Runtime,
    events: Subscription,
    tenant_id: str,
    *,
    since_s: float | None,
    options: LogOptions = DEFAULT_LOG_OPTIONS,
    sent: list[str],
    write: Callable[[str], Awaitable[None]],
    client_gone: Callable[[], bool],
) -> None:
    """Write the tenant's new log lines until cancelled or the client goes away.

    ``sent`` is the history already written; the first follow stream replays it."""
    skip = len(sent)
    last_stamp = next((s for s in map(line_stamp, reversed(sent)) if s), None)
    window = since_s
    while True:
        try:
            async for line in runtime.logs(
                tenant_id, follow=True, since_s=window, options=options
            ):
                if skip > 0:
                    skip -= 1
                    continue
                stamp = line_stamp(line)
                if stamp is not None:
                    if last_stamp is not None and stamp <= last_stamp:
                        continue  # a line of an earlier run, already sent
                    last_stamp = stamp
                await write(line)
        except KeyError:
            pass  # no log yet: the tenant never booted here
        skip = 0
        ended = time.monotonic()
        # The run is over (or none started yet): wait for the next boot.
        while True:
            event = await events.next(IDLE_CHECK_S)
            if client_gone():
                return
            if event is not None and event.get("kind") in BOOT_EVENTS:
                break
        window = time.monotonic() - ended + WINDOW_SLACK_S
