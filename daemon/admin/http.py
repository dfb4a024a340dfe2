"""HTTP helpers shared by the admin API modules (admin_api, admin_lifecycle, admin_watch):
error bodies, JSON bodies, path parameters and label selectors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

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


# -- label selectors (subset of Kubernetes syntax: k=v, k!=v, k, !k) ------------
def parse_label_selector(selector: str) -> list[tuple[str, str, str | None]]:
    terms: list[tuple[str, str, str | None]] = []
    for raw in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "=" in raw:
            key, value = raw.split("=", 1)
            terms.append(("=", key.strip().rstrip("="), value.strip()))
        elif raw.startswith("!"):
            terms.append(("!", raw[1:].strip(), None))
        else:
            terms.append(("exists", raw, None))
    for _, key, _ in terms:
        if not key:
            raise ValueError(f"invalid label selector {selector!r}")
    return terms


def matches_labels(labels: dict[str, str], terms: list[tuple[str, str, str | None]]) -> bool:
    for op, key, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True
