"""Lifecycle of the stand-in agent: boot, Telegram startup, serve, drain on SIGTERM, exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from otm.devtools.agent_stub.clients import BotApi, BotApiError
from otm.devtools.agent_stub.config import AgentSettings, ConfigError, DmPolicySource, load_settings
from otm.devtools.agent_stub.gateway import create_gateway_app
from otm.devtools.agent_stub.runtime import AgentRuntime, TelegramState
from otm.devtools.agent_stub.store import AgentStore
from otm.devtools.agent_stub.turns import TurnEngine
from otm.devtools.agent_stub.webhook import create_webhook_app

logger = logging.getLogger("otm.agent_stub")

# grammY's default list as OpenClaw adjusts it (minus stopped_message_generation, plus
# message_reaction and channel_post), so a fake Bot API sees what the real gateway sends.
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
]


async def _with_backoff(
    what: str, attempt: Callable[[], Awaitable[Any]], settings: AgentSettings
) -> Any:
    """Retry on retryable Bot API errors (OpenClaw: 5 s doubling to 60 s, 20% jitter)."""
    delay = settings.retry_initial_s
    while True:
        try:
            return await attempt()
        except BotApiError as e:
            if not e.retryable:
                raise
            logger.warning("%s failed (%s); retrying in %.1fs", what, e, delay)
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        delay = min(delay * 2, settings.retry_max_s)


async def start_telegram(runtime: AgentRuntime, bot: BotApi) -> None:
    """getMe until it works, then bind the webhook listener, then setWebhook; then admit turns."""
    telegram = runtime.settings.telegram
    assert telegram is not None
    try:
        me = await _with_backoff("getMe", lambda: bot.call("getMe"), runtime.settings)
        logger.info("telegram bot @%s", (me or {}).get("username", "?"))
        runner = web.AppRunner(create_webhook_app(runtime, telegram), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, telegram.webhook_host, telegram.webhook_port).start()
        runtime.webhook_runner = runner
        logger.info(
            "webhook local listener on http://%s:%d%s",
            telegram.webhook_host,
            telegram.webhook_port,
            telegram.webhook_path,
        )
        params = {
            "url": telegram.webhook_url,
            "secret_token": telegram.webhook_secret,
            "allowed_updates": ALLOWED_UPDATES,
        }
        await _with_backoff("setWebhook", lambda: bot.call("setWebhook", params), runtime.settings)
    except BotApiError as e:
        logger.error("telegram channel failed: %s", e)
        runtime.telegram = TelegramState.FAILED
        await _stop_webhook(runtime)
        return
    except OSError as e:
        logger.error("telegram webhook listener failed to bind: %s", e)
        runtime.telegram = TelegramState.FAILED
        return
    runtime.telegram = TelegramState.READY
    logger.info("telegram ready")
    await runtime.dispatch_spooled()


async def _stop_webhook(runtime: AgentRuntime) -> None:
    if runtime.webhook_runner is not None:
        runner, runtime.webhook_runner = runtime.webhook_runner, None
        await runner.cleanup()


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("task %s failed", task.get_name(), exc_info=task.exception())


async def serve(settings: AgentSettings, stop: asyncio.Event) -> int:
    if settings.boot_delay_s > 0:
        # Simulated boot: nothing listens yet, as while a real gateway loads its plugins.
        try:
            async with asyncio.timeout(settings.boot_delay_s):
                await stop.wait()
            return 0
        except TimeoutError:
            pass
    store = AgentStore(settings.state_dir, settings.agent_id)
    await store.open()
    http = aiohttp.ClientSession()
    telegram = settings.telegram
    bot = BotApi(http, telegram.api_root, telegram.bot_token) if telegram else None
    engine = TurnEngine(
        store=store,
        http=http,
        bot=bot,
        model=settings.model,
        dm_policy=DmPolicySource(settings.config_path, telegram.dm) if telegram else None,
        pairing_salt=str(settings.state_dir),
    )
    if telegram is not None:
        initial = TelegramState.STARTING
    else:
        initial = TelegramState.FAILED if settings.telegram_problem else TelegramState.DISABLED
    runtime = AgentRuntime(settings=settings, store=store, engine=engine, telegram=initial)
    if settings.telegram_problem:
        logger.error("telegram channel cannot start: %s", settings.telegram_problem)
    gateway = web.AppRunner(create_gateway_app(runtime), access_log=None, shutdown_timeout=2.0)
    telegram_task: asyncio.Task[None] | None = None
    try:
        await gateway.setup()
        try:
            await web.TCPSite(gateway, settings.gateway_host, settings.gateway_port).start()
        except OSError as e:
            logger.error("gateway port %d: %s", settings.gateway_port, e)
            return 1
        logger.info("gateway listening on %s:%d", settings.gateway_host, settings.gateway_port)
        if bot is not None:
            telegram_task = asyncio.create_task(
                start_telegram(runtime, bot), name="agent-telegram-startup"
            )
            telegram_task.add_done_callback(_log_task_failure)
        reloader = ConfigReloader(runtime, http, telegram_task)
        reload_task = asyncio.create_task(reloader.run(stop), name="agent-config-reload")
        reload_task.add_done_callback(_log_task_failure)
        await stop.wait()
        await asyncio.gather(reload_task, return_exceptions=True)
        telegram_task = reloader.telegram_task
        # Drain: admission closes (readyz says gateway-draining) but the webhook keeps
        # acking into the spool; turns already admitted finish within the budget.
        runtime.draining = True
        logger.info("admission closed: stop (SIGTERM); %d turn(s) in flight", engine.pending)
        if telegram_task is not None and not telegram_task.done():
            telegram_task.cancel()
        if not await engine.wait_idle(settings.drain_timeout_s):
            logger.warning(
                "drain budget %.1fs exceeded; abandoning turns", settings.drain_timeout_s
            )
        return 0
    finally:
        if telegram_task is not None:
            telegram_task.cancel()
            await asyncio.gather(telegram_task, return_exceptions=True)
        await _stop_webhook(runtime)
        await gateway.cleanup()
        await engine.close()
        await http.close()
        await store.close()
        logger.info("shutdown complete")


class ConfigReloader:
    """Hot reload of ``openclaw.json`` on an (atomic) rewrite, as OpenClaw's watcher does
    (it also works under ``OPENCLAW_CONFIG_READONLY=1``): a changed Telegram account restarts
    the channel (getMe, listener, setWebhook with the new token/secret/URL), a changed agent
    switches the store to that agent's files. Other keys need a restart and are ignored."""

    POLL_S = 0.1

    def __init__(
        self, runtime: AgentRuntime, http: aiohttp.ClientSession, task: asyncio.Task[None] | None
    ) -> None:
        self.runtime = runtime
        self.http = http
        self.telegram_task = task
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.runtime.settings.config_path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.POLL_S):
                    await stop.wait()
            stamp = self._stat()
            if stamp is None or stamp == self._stamp or stop.is_set():
                continue
            self._stamp = stamp
            try:
                new = load_settings()
            except ConfigError as e:  # a half-written file: keep running on the old config
                logger.warning("config reload skipped: %s", e)
                continue
            logger.info("config change detected")
            await self.apply(new)

    async def apply(self, new: AgentSettings) -> None:
        runtime = self.runtime
        old = runtime.settings
        runtime.settings = new
        if new.agent_id != old.agent_id:
            await runtime.store.switch_agent(new.agent_id)
            logger.info("agent %s -> %s", old.agent_id, new.agent_id)
        if new.telegram != old.telegram:
            logger.info("restarting telegram channel")
            if self.telegram_task is not None:
                self.telegram_task.cancel()
                await asyncio.gather(self.telegram_task, return_exceptions=True)
            await _stop_webhook(runtime)
            telegram = new.telegram
            bot = BotApi(self.http, telegram.api_root, telegram.bot_token) if telegram else None
            runtime.engine.rebind(
                bot=bot,
                dm_policy=DmPolicySource(new.config_path, telegram.dm) if telegram else None,
            )
            if telegram is None or bot is None:
                runtime.telegram = TelegramState.DISABLED
                self.telegram_task = None
            else:
                runtime.telegram = TelegramState.STARTING
                self.telegram_task = asyncio.create_task(
                    start_telegram(runtime, bot), name="agent-telegram-startup"
                )
                self.telegram_task.add_done_callback(_log_task_failure)
        logger.info("config hot reload applied")


async def _amain(settings: AgentSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await serve(settings, stop)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("OTM_AGENT_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"agent stub: {e}", file=sys.stderr)
        return 1
    return asyncio.run(_amain(settings))
