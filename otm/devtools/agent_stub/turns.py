"""Agent turns, processed asynchronously and in order per chat (one lane per chat).

A turn: apply the DM policy, show "typing", produce the reply (the configured model, or the
deterministic ``echo: <text> (#<n>)`` with the tenant's persisted turn counter), send it once
(OpenClaw never replays a failed send), then mark the spooled update done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from otm.devtools.agent_stub.clients import (
    BotApi,
    BotApiError,
    ModelError,
    stream_chat_completion,
)
from otm.devtools.agent_stub.config import DmPolicySource, ModelConfig
from otm.devtools.agent_stub.store import AgentStore

logger = logging.getLogger(__name__)

TYPING_INTERVAL_S = 4.0
"""Telegram shows "typing" for about 5 s; OpenClaw repeats it about every 4 s during a turn."""
SYSTEM_PROMPT = "You are a stand-in agent used to test otm. Answer briefly."
MODEL_FAILED_REPLY = "⚠️ Agent failed before reply: the configured model is unavailable."
_PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class Turn:
    lane: str
    """Turns in one lane run one after another; lanes run in parallel."""
    session: str
    """Conversation history key."""
    text: str
    reply_chat_id: str | None
    """Telegram chat that gets the reply; None keeps the reply internal (hook runs)."""
    update_id: int | None = None
    """The spooled update this turn consumes, marked done once the turn is over."""
    user_id: str | None = None
    """Sender, checked against the DM policy; None for trusted sources such as hooks."""
    result: asyncio.Future[str] | None = field(default=None, repr=False)


def turn_from_update(update_id: int, body: dict[str, Any]) -> Turn | None:
    """The turn a Telegram update asks for, or None for updates that need no answer."""
    message = body.get("message")
    if not isinstance(message, dict):
        return None
    text = message.get("text") or message.get("caption")
    chat = message.get("chat") or {}
    if not isinstance(text, str) or not isinstance(chat, dict) or chat.get("id") is None:
        return None
    sender = message.get("from") or {}
    chat_id = str(chat["id"])
    return Turn(
        lane=f"telegram:{chat_id}",
        session=f"telegram:{chat_id}",
        text=text,
        reply_chat_id=chat_id,
        update_id=update_id,
        user_id=str(sender.get("id", chat_id)) if isinstance(sender, dict) else chat_id,
    )


def pairing_code(salt: str, user_id: str) -> str:
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return "".join(_PAIRING_ALPHABET[b % len(_PAIRING_ALPHABET)] for b in digest[:8])


def pairing_text(code: str, user_id: str) -> str:
    return (
        "OpenClaw: access not configured.\n\n"
        f"Your Telegram user id: {user_id}\n"
        f"Pairing code: {code}\n\n"
        "Ask the bot owner to approve with:\n"
        f"openclaw pairing approve telegram {code}"
    )


def _chat_ref(chat_id: str) -> int | str:
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


@dataclass(eq=False, kw_only=True)
class TurnEngine:
    store: AgentStore
    http: aiohttp.ClientSession
    bot: BotApi | None
    model: ModelConfig | None
    dm_policy: DmPolicySource | None
    pairing_salt: str
    pending: int = field(default=0, init=False)
    """Turns queued or running."""
    last_turn_at: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._lanes: dict[str, deque[Turn]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def rebind(self, *, bot: BotApi | None, dm_policy: DmPolicySource | None) -> None:
        """Use another bot account from now on (a config hot reload)."""
        self.bot = bot
        self.dm_policy = dm_policy

    def submit(self, turn: Turn) -> None:
        self.pending += 1
        self._idle.clear()
        self._lanes.setdefault(turn.lane, deque()).append(turn)
        if turn.lane not in self._lane_tasks:
            task = asyncio.create_task(self._run_lane(turn.lane), name=f"agent-lane:{turn.lane}")
            self._lane_tasks[turn.lane] = task
            task.add_done_callback(self._lane_finished)

    def _lane_finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("lane task %s failed", task.get_name(), exc_info=task.exception())

    async def _run_lane(self, lane: str) -> None:
        queue = self._lanes[lane]
        try:
            while queue:
                turn = queue[0]
                try:
                    await self._process(turn)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("turn in %s failed", lane)
                    if turn.result is not None and not turn.result.done():
                        turn.result.set_exception(RuntimeError("turn failed"))
                finally:
                    queue.popleft()
                    self.pending -= 1
                    self.last_turn_at = datetime.now(UTC)
                    if self.pending == 0:
                        self._idle.set()
        finally:
            # Reap the idle lane; a turn submitted from now on starts a fresh one.
            del self._lane_tasks[lane]
            del self._lanes[lane]

    async def wait_idle(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        tasks = list(self._lane_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _process(self, turn: Turn) -> None:
        if not await self._admitted_by_policy(turn):
            await self._finish(turn, None)
            return
        typing = None
        if turn.reply_chat_id is not None and self.bot is not None:
            typing = asyncio.create_task(
                self._keep_typing(turn.reply_chat_id), name=f"agent-typing:{turn.lane}"
            )
        try:
            number = await self.store.next_turn_number()
            reply = await self._reply(turn, number)
            await self.store.append_history(
                turn.session, [("user", turn.text), ("assistant", reply)]
            )
        finally:
            if typing is not None:
                typing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await typing
        if turn.reply_chat_id is not None:
            await self._send(turn.reply_chat_id, reply)
        await self._finish(turn, reply)

    async def _admitted_by_policy(self, turn: Turn) -> bool:
        if turn.user_id is None or self.dm_policy is None:
            return True
        policy = self.dm_policy.current()
        if policy.policy == "open" or policy.allows(turn.user_id):
            return True
        if policy.policy == "pairing" and turn.reply_chat_id is not None:
            code = pairing_code(self.pairing_salt, turn.user_id)
            await self._send(turn.reply_chat_id, pairing_text(code, turn.user_id))
        # allowlist and disabled drop unknown senders silently, as OpenClaw does.
        return False

    async def _reply(self, turn: Turn, number: int) -> str:
        if self.model is None:
            return f"echo: {turn.text} (#{number})"
        history = await self.store.history(turn.session)
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        messages += [{"role": role, "content": content} for role, content in history]
        messages.append({"role": "user", "content": turn.text})
        try:
            return await stream_chat_completion(self.http, self.model, messages)
        except ModelError as e:
            logger.warning("model call failed: %s", e)
            return MODEL_FAILED_REPLY

    async def _keep_typing(self, chat_id: str) -> None:
        assert self.bot is not None
        while True:
            try:
                await self.bot.call(
                    "sendChatAction", {"chat_id": _chat_ref(chat_id), "action": "typing"}
                )
            except BotApiError as e:
                logger.debug("typing indicator failed: %s", e)
            await asyncio.sleep(TYPING_INTERVAL_S)

    async def _send(self, chat_id: str, text: str) -> None:
        if self.bot is None:
            logger.warning("no Telegram channel; reply to %s dropped", chat_id)
            return
        try:
            await self.bot.call(
                "sendMessage", {"chat_id": chat_id, "text": html.escape(text), "parse_mode": "HTML"}
            )
        except BotApiError as e:
            # The delivery state is unknown after a failed send: never replay it blindly.
            logger.warning("final reply failed, not retried: %s", e)

    async def _finish(self, turn: Turn, reply: str | None) -> None:
        if turn.update_id is not None:
            await self.store.mark_done(turn.update_id)
        if turn.result is not None and not turn.result.done():
            turn.result.set_result(reply or "")
