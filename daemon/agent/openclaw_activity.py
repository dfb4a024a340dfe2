"""Whether a real OpenClaw gateway has a turn running: its own session index.

OpenClaw 2026.9.6 has no HTTP activity endpoint (``/otm/activity`` is the stand-in's; the
gateway answers it with its Control UI page). It does say so over its WebSocket protocol:
``sessions.list`` rows carry ``hasActiveRun`` ("the authoritative aggregate direct-session
activity fact") and ``endedAt`` of the last run. Measured against the pinned gateway: a
Telegram turn waiting on its model shows ``hasActiveRun: true``, ``false`` once answered.

The connection is a trusted local backend client (``gateway-client``/``backend``) with the
shared gateway token, which OpenClaw accepts without a device identity on direct loopback
connections only: so this serves the local runtime, not pods reached over the network.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp

from daemon.ports import AgentActivity

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 4


async def fetch_openclaw_activity(
    session: aiohttp.ClientSession, gateway_url: str, gateway_token: str, timeout_s: float
) -> AgentActivity | None:
    """The gateway's running turns and last turn end; None if it cannot say."""
    ws_url = "ws" + gateway_url.removeprefix("http") + "/"
    try:
        async with asyncio.timeout(timeout_s), session.ws_connect(ws_url) as ws:
            challenge = await ws.receive_json()
            if challenge.get("event") != "connect.challenge":
                return None
            await ws.send_json(_connect_request(gateway_token))
            if not (await _response(ws, "connect")).get("ok"):
                return None
            await ws.send_json({"type": "req", "id": "sessions", "method": "sessions.list"})
            listed = await _response(ws, "sessions")
    except (aiohttp.ClientError, TimeoutError, ValueError, TypeError) as exc:
        log.debug("openclaw activity of %s unavailable: %s", gateway_url, exc)
        return None
    payload = listed.get("payload")
    rows = payload.get("sessions") if listed.get("ok") and isinstance(payload, dict) else None
    if not isinstance(rows, list):
        return None
    return activity_of(rows)


def activity_of(rows: list[Any]) -> AgentActivity:
    sessions = [row for row in rows if isinstance(row, dict)]
    running = sum(1 for row in sessions if row.get("hasActiveRun") is True)
    ended = [row["endedAt"] for row in sessions if isinstance(row.get("endedAt"), int | float)]
    last = datetime.fromtimestamp(max(ended) / 1000, UTC) if ended else None
    return AgentActivity(busy=running > 0, pending_turns=running, last_turn_at=last)


def _connect_request(gateway_token: str) -> dict[str, Any]:
    return {
        "type": "req",
        "id": "connect",
        "method": "connect",
        "params": {
            "minProtocol": PROTOCOL_VERSION,
            "maxProtocol": PROTOCOL_VERSION,
            "client": {
                "id": "gateway-client",
                "version": "otm",
                "platform": "linux",
                "mode": "backend",
            },
            "role": "operator",
            "scopes": ["operator.read"],
            "caps": [],
            "commands": [],
            "permissions": {},
            "auth": {"token": gateway_token},
        },
    }


async def _response(ws: aiohttp.ClientWebSocketResponse, request_id: str) -> dict[str, Any]:
    """The response frame to ``request_id`` (events in between are skipped)."""
    while True:
        frame = await ws.receive_json()
        if isinstance(frame, dict) and frame.get("type") == "res" and frame.get("id") == request_id:
            return frame
