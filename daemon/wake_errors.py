"""Wake failures that no retry can fix.

A wake normally fails for a passing reason (a slow boot, a node under pressure)
and is retried up to ``max_wake_attempts`` times. Some failures are certain to
repeat — the agent command does not exist, the tenant has no bot token — and
retrying them only delays the operator's answer (and spams the user with
"starting up" notices). Those raise :class:`WakeImpossible`: the tenant goes
``failed`` at once with the reason.
"""

from __future__ import annotations

from daemon.model import OtmError


class WakeImpossible(OtmError):
    """This wake cannot succeed until an operator changes something."""


def no_bot_token_reason(tenant_id: str) -> str:
    return (
        f"tenant {tenant_id!r} has no bot token: set one with "
        f"`otm tenant update {tenant_id} --bot-token-file FILE`"
    )
