"""Ask an agent's gateway whether it is up and whether turns are still running."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import aiohttp

from daemon.ports import AgentActivity


async def agent_answers(
    session: aiohttp.ClientSession,
    url: str,
    timeout: aiohttp.ClientTimeout,
    *,
    json_ready: bool = False,
) -> bool:
    """Whether ``GET url`` answers 200 (with ``json_ready``: and a body ``{"ready": true}``,
    as a gateway's ``/readyz`` does once its channels are up)."""
    try:
        async with session.get(url, timeout=timeout) as resp:
            if resp.status != 200:
                return False
            if not json_ready:
                return True
            body = await resp.json(content_type=None)
            return isinstance(body, dict) and body.get("ready") is True
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False


async def fetch_agent_activity(
    session: aiohttp.ClientSession, gateway_url: str, timeout: aiohttp.ClientTimeout
) -> AgentActivity | None:
    """``GET {gateway}/otm/activity``; None when the agent cannot say (unreachable,
    or a gateway without the endpoint, such as a stock OpenClaw answering 404)."""
    try:
        async with session.get(f"{gateway_url}/otm/activity", timeout=timeout) as resp:
            if resp.status != 200:
                return None
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return parse_agent_activity(body)


MAX_PENDING_TURNS = 1_000_000
CLOCK_SKEW_S = 5.0


def parse_agent_activity(body: Any, now: datetime | None = None) -> AgentActivity | None:
    """The agent's answer as untrusted input (tenant code runs in the agent): wrong
    types count as absent, ``last_turn_at`` must carry a timezone and lie in the past
    (a future one is ignored: it must not keep the tenant from idle culling)."""
    if not isinstance(body, dict):
        return None
    busy = body.get("busy")
    pending = body.get("pending_turns")
    if not isinstance(pending, int) or isinstance(pending, bool):
        pending = 0
    return AgentActivity(
        busy=busy is True,
        pending_turns=min(max(pending, 0), MAX_PENDING_TURNS),
        last_turn_at=trusted_turn_time(body.get("last_turn_at"), now),
    )


def trusted_turn_time(value: Any, now: datetime | None = None) -> datetime | None:
    """A timezone-aware instant no later than ``now``, or None. Up to
    ``CLOCK_SKEW_S`` ahead counts as now (agent and daemon clocks differ slightly);
    further ahead is not a credible report and is ignored."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        return None
    current = now or datetime.now(value.tzinfo)
    if value > current + timedelta(seconds=CLOCK_SKEW_S):
        return None
    return min(value, current)
