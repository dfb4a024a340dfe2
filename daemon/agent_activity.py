"""Ask an agent's gateway whether it is up and whether turns are still running."""

from __future__ import annotations

from datetime import datetime

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
    if not isinstance(body, dict):
        return None
    last = body.get("last_turn_at")
    return AgentActivity(
        busy=bool(body.get("busy")),
        pending_turns=int(body.get("pending_turns") or 0),
        last_turn_at=datetime.fromisoformat(last) if isinstance(last, str) else None,
    )
