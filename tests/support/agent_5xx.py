"""A broken agent image for rollout tests (``python -m tests.support.agent_5xx``): it boots
and reports ready like the stand-in agent (gateway ``/readyz``, webhook ``/healthz``, ports
from its openclaw.json), then answers every update with 500, as an agent whose turns crash.
It never touches its state directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from aiohttp import web


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def broken(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=500, text="agent error")


async def serve(config: dict[str, Any]) -> None:
    telegram = config["channels"]["telegram"]
    app = web.Application()
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/healthz", healthz)
    app.router.add_post(str(telegram["webhookPath"]), broken)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(telegram["webhookPort"])).start()
    await web.TCPSite(runner, "127.0.0.1", int(config["gateway"]["port"])).start()
    print("broken agent listening", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    with open(os.environ["OPENCLAW_CONFIG_PATH"]) as fh:
        asyncio.run(serve(json.load(fh)))
