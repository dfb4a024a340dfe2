"""Admin endpoints of fleet image rollouts (daemon/lifecycle/rollout.py).

- GET  /v1/rollout            200 {"rollout": {... "health": {"new", "old"}, "moved"} | null}
- POST /v1/rollout            201 the new rollout; body {"image", "steps": "5%,25%,100%",
                              "selector", "pause_s", "gate": {...}}; 409 while one is active
- POST /v1/rollout/pause      200; 404 no rollout; 409 not running
- POST /v1/rollout/resume     200; 404; 409 not paused
- POST /v1/rollout/rollback   200; 404; 409 already rolled back
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from daemon import app_keys as keys
from daemon.admin.audit import audited, changes_between, record
from daemon.admin.http import error_response, read_json_object
from daemon.lifecycle.rollout import NoRollout, RolloutConflict
from daemon.rollout import Rollout


async def get_rollout(request: web.Request) -> web.Response:
    return web.json_response({"rollout": await request.app[keys.ROLLOUTS].status()})


@audited("rollout.start")
async def start_rollout(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    try:
        await request.app[keys.ROLLOUTS].start(body)
    except RolloutConflict as exc:
        return error_response(409, str(exc))
    record(request, changes=changes_between({}, {"image": body.get("image")}))
    return web.json_response({"rollout": await request.app[keys.ROLLOUTS].status()}, status=201)


def _verb(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @audited(f"rollout.{name}")
    async def handler(request: web.Request) -> web.Response:
        rollouts = request.app[keys.ROLLOUTS]
        reason = (await read_json_object(request)).get("reason")
        try:
            if name == "rollback" and isinstance(reason, str) and reason.strip():
                done: Rollout = await rollouts.rollback(reason.strip()[:200])
            else:
                done = await getattr(rollouts, name)()
        except NoRollout as exc:
            return error_response(404, str(exc))
        except RolloutConflict as exc:
            return error_response(409, str(exc))
        del done
        return web.json_response({"rollout": await rollouts.status()})

    return handler


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/rollout", get_rollout)
    app.router.add_post("/v1/rollout", start_rollout)
    for verb in ("pause", "resume", "rollback"):
        app.router.add_post(f"/v1/rollout/{verb}", _verb(verb))
