"""`/_fake/...`: the control methods over HTTP, for tests that drive the fake from another
process (same bearer token as the API).

    POST /_fake/compact                            → {"resourceVersion": N}
    POST /_fake/drop-watches                       → {"dropped": N}
    POST /_fake/faults  {"status": 500, "count": 1, "path_contains": "/pods", "method": "GET",
                         "delay": 0.0}
    GET  /_fake/requests                           → [{"method", "path", "query", ...}]
    POST /_fake/pods/{ns}/{name}/fail    {"exit_code": 1, "reason": "Error", "message": "..."}
    POST /_fake/pods/{ns}/{name}/sandbox-changed   {"new_ip": "127.10.9.9"}   (optional)
    POST /_fake/pods/{ns}/{name}/kill
    POST /_fake/pods/{ns}/{name}/crash   {"exit_code": 1, "reason": "Error"}   (restartPolicy)
    POST /_fake/pods/{ns}/{name}/unschedulable   {"message": "0/3 nodes are available: ..."}
    POST /_fake/pods/{ns}/{name}/probe  {"kind": "livenessProbe", "passing": false}  (null: real)
    POST /_fake/images   {"image": "repo/x:1", "pullable": false}
    POST /_fake/node/lose
    POST /_fake/pods/{ns}/{name}/ready   {"ready": false}
    POST /_fake/pods/{ns}/{name}/log     {"text": "hello\\n", "container": "main"}
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors

if TYPE_CHECKING:
    from .server import FakeKubernetes

JSON = dict[str, Any]


async def _json(request: web.Request) -> JSON:
    if not await request.read():
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise errors.bad_request("expected a JSON object")
    return body


def _termination(body: JSON) -> JSON:
    """How a failed or crashed container ended: exit code 1, reason Error, unless ``body``
    says otherwise."""
    return {"exit_code": int(body.get("exit_code", 1)), "reason": body.get("reason", "Error")}


def add_control_routes(app: web.Application, fake: FakeKubernetes) -> None:
    async def compact(request: web.Request) -> web.Response:
        return web.json_response({"resourceVersion": fake.compact()})

    async def drop_watches(request: web.Request) -> web.Response:
        return web.json_response({"dropped": fake.drop_watches()})

    async def faults(request: web.Request) -> web.Response:
        body = await _json(request)
        status = body.get("status", 500)
        fake.inject_fault(
            None if status is None else int(status),
            count=int(body.get("count", 1)),
            path_contains=body.get("path_contains"),
            method=body.get("method"),
            delay=float(body.get("delay", 0.0)),
        )
        return web.json_response({})

    async def requests(request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(r) for r in fake.requests])

    async def pod_action(request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        action, body = request.match_info["action"], await _json(request)
        try:
            if action == "fail":
                message = body.get("message")
                pod = await fake.fail_pod(ns, name, **_termination(body), message=message)
                return web.json_response(pod)
            if action == "sandbox-changed":
                return web.json_response(
                    await fake.sandbox_changed(ns, name, new_ip=body.get("new_ip"))
                )
            if action == "crash":
                pod = await fake.crash_pod(ns, name, **_termination(body))
                return web.json_response(pod)
            if action == "probe":
                fake.set_probe(ns, name, str(body["kind"]), body.get("passing"))
                return web.json_response({})
            if action == "unschedulable":
                return web.json_response(
                    fake.mark_unschedulable(
                        ns, name, body.get("message", "0/1 nodes are available")
                    )
                )
            if action == "kill":
                await fake.kill_pod(ns, name)
                return web.json_response({})
            if action == "ready":
                return web.json_response(fake.set_pod_ready(ns, name, bool(body["ready"])))
            if action == "log":
                fake.append_pod_log(ns, name, str(body["text"]), body.get("container"))
                return web.json_response({})
        except (LookupError, RuntimeError) as exc:
            raise errors.ApiError(409, "Conflict", str(exc)) from None
        raise errors.ApiError(404, "NotFound", f"no control action {action!r}")

    async def images(request: web.Request) -> web.Response:
        body = await _json(request)
        fake.set_image_pullable(str(body["image"]), bool(body.get("pullable", False)))
        return web.json_response({})

    async def lose_node(request: web.Request) -> web.Response:
        return web.json_response(await fake.lose_node())

    app.router.add_post("/_fake/images", images)
    app.router.add_post("/_fake/node/lose", lose_node)
    app.router.add_post("/_fake/compact", compact)
    app.router.add_post("/_fake/drop-watches", drop_watches)
    app.router.add_post("/_fake/faults", faults)
    app.router.add_get("/_fake/requests", requests)
    app.router.add_post("/_fake/pods/{ns}/{name}/{action}", pod_action)
