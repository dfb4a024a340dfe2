"""Test-only crash injection: ``OTM_TEST_CRASH_AT=<step>`` makes the daemon SIGKILL itself
when it reaches that step, so crash-safety tests can kill it at every step of a flow
(tests/faults/test_crash_steps.py). Unset (always, outside those tests) it does nothing.

Steps: ``wake-run-dir`` (run dir created, nothing restored), ``wake-restored`` (snapshot
unpacked, not yet committed), ``wake-spawned`` (agent process started, pid file not
written), ``wake-ready`` (agent ready, registry not yet ``running``), ``sleep-before-save``
(agent stopped, state not saved), ``sleep-saved`` (state saved, run dir not removed),
``poll-buffered`` (a batch of polled updates in the buffer, its getUpdates offset not yet
committed).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "OTM_TEST_CRASH_AT"


def crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
