"""`python -m daemon` (same as `otm daemon`): run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import sys

from aiohttp import web

from daemon import app_keys as keys
from daemon.app import create_app, write_discovery_file
from daemon.hardening import restrict_process_umask
from daemon.logs import setup_logging
from daemon.model_gateway.app import MODEL_GATEWAY_URL
from daemon.settings import Settings, SettingsError, load_settings

log = logging.getLogger("daemon")

SHUTDOWN_TIMEOUT_S = 5.0
PORT_HINT = (
    "another otm daemon (or ./scripts/run-local.sh) is probably running; stop it, or choose "
    "other ports: --router-port/--admin-port/--model-gateway-port or OTM_ROUTER_PORT/"
    "OTM_ADMIN_PORT/OTM_MODEL_GATEWAY_PORT (0 picks a free one)"
)


def describe_failure(exc: BaseException) -> str:
    """One line for the operator; a port conflict says how to get out of it."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"{exc} — {PORT_HINT}"
    return str(exc) or type(exc).__name__


def tune_garbage_collector(young_threshold: int) -> None:
    """Collect the young generation every ``young_threshold`` net allocations (0: Python's
    default), keeping the older generations' ratios (see ``Settings.gc_young_threshold``)."""
    if young_threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)


async def serve(settings: Settings) -> int:
    """Exit code: 0 after a requested stop, 1 after the daemon stopped itself (fatal)."""
    app = create_app(settings)
    # Streams (watch, logs -f) are ended by on_shutdown hooks; this bounds whatever is
    # left (aiohttp's default would wait 60 s for every open handler).
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()  # runs every cleanup context's startup half
    try:
        site = web.TCPSite(runner, settings.admin_host, settings.admin_port)
        await site.start()
        host, port = runner.addresses[0][:2]
        admin_url = f"http://{host}:{port}"
        router_url = app[keys.ROUTER_URL]
        write_discovery_file(settings, admin_url, router_url)
        # One machine-readable line: tests and scripts read the bound ports from it.
        gateway = app.get(MODEL_GATEWAY_URL)
        extra = f" model_gateway={gateway}" if gateway else ""
        print(f"otm daemon ready admin={admin_url} router={router_url}{extra}", flush=True)
        log.info("admin API on %s, router on %s", admin_url, router_url)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        (settings.data_dir / "daemon.json").unlink(missing_ok=True)
    return 1 if app[keys.FATAL_ERRORS] else 0


def main(settings: Settings | None = None) -> int:
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    setup_logging(settings)
    # Before anything is created: registry, AOF, agent state and logs are private.
    restrict_process_umask()
    tune_garbage_collector(settings.gc_young_threshold)
    try:
        return asyncio.run(serve(settings))
    except Exception as exc:
        log.error("daemon failed: %s", describe_failure(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
