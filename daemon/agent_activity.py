"""Ask an agent's gateway whether turns are still running (both runtimes use it)."""

from __future__ import annotations

from datetime import datetime

import aiohttp

from daemon.ports import AgentActivity


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
