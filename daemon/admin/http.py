"""HTTP helpers shared by the admin API modules (admin_api, admin_lifecycle, admin_watch):
error bodies, JSON bodies, path parameters and label selectors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# Re-exported: the handlers import selectors from here (equality- and set-based).
from daemon.label_selector import matches_labels as matches_labels
from daemon.label_selector import parse_label_selector as parse_label_selector
from daemon.model import validate_tenant_id


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError
        raise web.HTTPBadRequest(reason="malformed JSON body") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="JSON body must be an object")
    return body


def tenant_id_param(request: web.Request) -> str:
    return validate_tenant_id(request.match_info["tenant_id"])

