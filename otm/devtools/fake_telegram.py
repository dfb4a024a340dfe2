"""A fake Telegram Bot API server that records what bots send.

Routes ``/bot<token>/<method>`` (GET or POST; JSON, form or multipart bodies), so the token tells
bots (tenants) apart, exactly like ``channels.telegram.apiRoot`` expects of the real API:

- ``getMe`` answers a bot identity derived from the token;
- ``setWebhook`` records ``url``/``secret_token``/``allowed_updates``; ``deleteWebhook`` drops them;
  ``getWebhookInfo`` reports them. Lenient by default (tests register loopback ``http://`` URLs);
  with ``strict_webhooks`` it refuses, as Telegram does, a URL that is not ``https`` on port
  443, 80, 88 or 8443 (400 ``Bad Request: bad webhook: ...``);
- ``/file/bot<token>/<path>`` serves the files tests put there (:meth:`FakeTelegram.put_file`);
  ``getFile`` answers their ``file_path``;
- ``sendMessage``/``editMessageText`` answer a Message object and record ``chat_id``/``text``;
- ``getUpdates`` long-polls the bot's queue with Telegram's semantics (``fake_updates.py``);
  tests queue updates with :meth:`FakeTelegram.inject_update` or ``POST /_fake/updates``;
- every other method answers ``true``.

A fault switch makes a bot's method answer HTTP 502 or 401 (a refused token) or drop the
connection, for failure paths.

Tests read what happened in-process (:meth:`FakeTelegram.sent`, :attr:`FakeTelegram.webhooks`,
:meth:`FakeTelegram.wait_for_messages`) or over HTTP under ``/_fake/`` when the fake runs as a
separate process (``python -m otm.devtools.fake_telegram --port N`` prints its URL).
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from otm.devtools._serving import AppServer, ChangeNotifier, ServingMain
from otm.devtools.fake_updates import GetUpdatesError, UpdateQueues

ANY = "*"
"""Wildcard for a fault's token or method."""

MESSAGE_METHODS = frozenset({"sendMessage", "editMessageText"})
MAX_WAIT_S = 60.0
"""Upper bound on how long an HTTP ``/_fake/sent`` long poll may wait."""


class FaultMode(enum.Enum):
    HTTP_502 = "502"
    CLOSE = "close"
    UNAUTHORIZED = "401"
    """Telegram's answer to a revoked or wrong bot token."""


@dataclass(frozen=True)
class BotApiCall:
    token: str
    method: str
    params: dict[str, Any]
    at: float
    faulted: bool


@dataclass(frozen=True)
class SentMessage:
    token: str
    method: str
    chat_id: str
    """Normalised to a string: OpenClaw sends ``"111"``, other clients send ``111``."""
    text: str
    message_id: int
    params: dict[str, Any]
    at: float


@dataclass(frozen=True)
class WebhookRegistration:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    set_at: float


@dataclass
class _FaultRule:
    mode: FaultMode
    remaining: int | None
    """How many more calls fail; None fails until cleared."""


@dataclass
class FakeTelegramState:
    """Everything the fake has seen; shared by the HTTP handlers and the in-process accessors."""

    calls: list[BotApiCall] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)
    webhooks: dict[str, WebhookRegistration] = field(default_factory=dict)
    strict_webhooks: bool = False
    """Refuse webhook URLs Telegram refuses (not https, or not on 443/80/88/8443)."""
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """(token, file_path) → content, served under ``/file/bot<token>/<file_path>``."""
    faults: dict[tuple[str, str], _FaultRule] = field(default_factory=dict)
    next_message_id: dict[str, int] = field(default_factory=dict)
    changes: ChangeNotifier = field(default_factory=ChangeNotifier)
    updates: UpdateQueues = field(init=False)

    def __post_init__(self) -> None:
        self.updates = UpdateQueues(self.notify)

    def notify(self) -> None:
        self.changes.notify()

    def sent(self, token: str | None = None, chat_id: str | int | None = None) -> list[SentMessage]:
        return [
            m
            for m in self.messages
            if (token is None or m.token == token)
            and (chat_id is None or m.chat_id == str(chat_id))
        ]

    def take_fault(self, token: str, method: str) -> FaultMode | None:
        for key in ((token, method), (token, ANY), (ANY, method), (ANY, ANY)):
            rule = self.faults.get(key)
            if rule is None:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self.faults[key]
            return rule.mode
        return None

    def reset(self) -> None:
        self.calls.clear()
        self.messages.clear()
        self.webhooks.clear()
        self.files.clear()
        self.faults.clear()
        self.next_message_id.clear()
        self.updates.clear()
        self.notify()


STATE_KEY = web.AppKey("fake_telegram_state", FakeTelegramState)


def bot_identity(token: str) -> dict[str, Any]:
    """The ``getMe`` answer: the numeric token prefix is the bot id, as on the real API."""
    prefix = token.split(":", 1)[0]
    bot_id = int(prefix) if prefix.isdigit() else zlib.crc32(token.encode()) or 1
    return {
        "id": bot_id,
        "is_bot": True,
        "first_name": f"Fake Bot {bot_id}",
        "username": f"fake_{bot_id}_bot",
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


def make_text_update(
    update_id: int,
    chat_id: int,
    text: str,
    *,
    user_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Tester",
    date: int | None = None,
) -> dict[str, Any]:
    """A Telegram Update carrying a private text message, as Telegram POSTs it to a webhook."""
    sender = chat_id if user_id is None else user_id
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id if message_id is None else message_id,
            "from": {"id": sender, "is_bot": False, "first_name": first_name},
            "chat": {"id": chat_id, "type": "private", "first_name": first_name},
            "date": int(time.time()) if date is None else date,
            "text": text,
        },
    }


WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
NOT_HTTPS = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
BAD_PORT = "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"


def webhook_refusal(url: str) -> str | None:
    """Telegram's refusal of a webhook URL (its description), or None if it would take it."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        return NOT_HTTPS
    try:
        port = parts.port or 443
    except ValueError:
        return BAD_PORT
    return None if port in WEBHOOK_PORTS else BAD_PORT


def _error(status: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )


def _chat_ref(chat_id: Any) -> int | str:
    text = str(chat_id)
    return int(text) if text.lstrip("-").isdigit() else text


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Bot API parameters from the query string plus a JSON, form or multipart body."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as e:
            raise web.HTTPBadRequest(text=f"Bad Request: can't parse JSON: {e}") from e
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        params.update(body)
        return params
    for name, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            params[name] = {"filename": value.filename, "size": len(value.file.read())}
        else:
            params[name] = value
    return params


def _json_field(value: Any) -> Any:
    # Form and multipart bodies carry arrays and objects as JSON text.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message_result(
    state: FakeTelegramState, token: str, method: str, params: dict[str, Any]
) -> dict[str, Any] | web.Response:
    chat_id, text = params.get("chat_id"), params.get("text")
    if chat_id is None or chat_id == "":
        return _error(400, "Bad Request: chat_id is empty")
    if not isinstance(text, str) or not text:
        return _error(400, "Bad Request: message text is empty")
    if method == "editMessageText":
        try:
            message_id = int(params["message_id"])
        except (KeyError, TypeError, ValueError):
            return _error(400, "Bad Request: message_id is required")
    else:
        message_id = state.next_message_id.get(token, 1)
        state.next_message_id[token] = message_id + 1
    now = time.time()
    state.messages.append(
        SentMessage(
            token=token,
            method=method,
            chat_id=str(chat_id),
            text=text,
            message_id=message_id,
            params=params,
            at=now,
        )
    )
    return {
        "message_id": message_id,
        "date": int(now),
        "chat": {"id": _chat_ref(chat_id), "type": "private"},
        "from": {
            k: v
            for k, v in bot_identity(token).items()
            if k in ("id", "is_bot", "first_name", "username")
        },
        "text": text,
    }


def _method_result(
    state: FakeTelegramState, token: str, method: str, params: dict[str, Any]
) -> Any:
    if method == "getMe":
        return bot_identity(token)
    if method == "setWebhook":
        url = params.get("url", "")
        if not url:
            state.webhooks.pop(token, None)
            return True
        if state.strict_webhooks and (refusal := webhook_refusal(str(url))):
            return _error(400, refusal)
        allowed = _json_field(params.get("allowed_updates"))
        state.webhooks[token] = WebhookRegistration(
            url=str(url),
            secret_token=params.get("secret_token"),
            allowed_updates=allowed if isinstance(allowed, list) else None,
            set_at=time.time(),
        )
        state.updates.webhook_set(token)
        return True
    if method == "deleteWebhook":
        state.webhooks.pop(token, None)
        return True
    if method == "getWebhookInfo":
        hook = state.webhooks.get(token)
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if hook and hook.allowed_updates is not None:
            info["allowed_updates"] = hook.allowed_updates
        return info
    if method in MESSAGE_METHODS:
        return _message_result(state, token, method, params)
    if method == "getFile":
        return _file_result(state, token, params)
    return True


def _file_result(
    state: FakeTelegramState, token: str, params: dict[str, Any]
) -> dict[str, Any] | web.Response:
    # The fake's file ids are the file paths themselves.
    path = str(params.get("file_id", ""))
    content = state.files.get((token, path))
    if content is None:
        return _error(400, "Bad Request: invalid file_id")
    return {
        "file_id": path,
        "file_unique_id": f"u{zlib.crc32(path.encode())}",
        "file_size": len(content),
        "file_path": path,
    }


async def handle_file(request: web.Request) -> web.Response:
    """``GET /file/bot<token>/<file_path>``: a file's bytes, as Telegram's file server."""
    state = request.app[STATE_KEY]
    token, path = request.match_info["token"], request.match_info["path"]
    state.calls.append(
        BotApiCall(token=token, method="file", params={"path": path}, at=time.time(), faulted=False)
    )
    state.notify()
    content = state.files.get((token, path))
    if content is None:
        return _error(404, "Not Found")
    return web.Response(body=content, content_type="application/octet-stream")


async def handle_bot_method(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    token, method = request.match_info["token"], request.match_info["method"]
    params = await _read_params(request)
    fault = state.take_fault(token, method)
    state.calls.append(
        BotApiCall(token=token, method=method, params=params, at=time.time(), faulted=bool(fault))
    )
    state.notify()
    if fault is FaultMode.HTTP_502:
        return _error(502, "Bad Gateway")
    if fault is FaultMode.UNAUTHORIZED:
        return _error(401, "Unauthorized")
    if fault is FaultMode.CLOSE:
        # Drop the connection without an answer, as a dying proxy would.
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    if method == "getUpdates":
        return await _get_updates(state, token, params)
    result = _method_result(state, token, method, params)
    if isinstance(result, web.Response):
        return result
    state.notify()
    return web.json_response({"ok": True, "result": result})


async def _get_updates(
    state: FakeTelegramState, token: str, params: dict[str, Any]
) -> web.Response:
    queues = state.updates
    try:
        poll, limit, timeout = queues.begin(token, params, webhook_set=token in state.webhooks)
        await state.changes.wait_until(lambda: queues.ready(token, poll), timeout)
        result = queues.finish(token, poll, limit)
    except GetUpdatesError as exc:
        return _error(exc.status, exc.description)
    return web.json_response({"ok": True, "result": result})


def _bounded_float(raw: str | None, default: float, upper: float) -> float:
    try:
        value = float(raw) if raw is not None else default
    except ValueError as e:
        raise web.HTTPBadRequest(text=f"not a number: {raw!r}") from e
    return max(0.0, min(value, upper))


async def handle_sent(request: web.Request) -> web.Response:
    """``GET /_fake/sent?token=&chat_id=&count=&timeout=``: long-polls until ``count`` are there."""
    state = request.app[STATE_KEY]
    token = request.query.get("token")
    chat_id = request.query.get("chat_id")
    count = int(_bounded_float(request.query.get("count"), 0, 1_000_000))
    timeout = _bounded_float(request.query.get("timeout"), 0.0, MAX_WAIT_S)
    complete = await state.changes.wait_until(
        lambda: len(state.sent(token, chat_id)) >= count, timeout
    )
    messages = [asdict(m) for m in state.sent(token, chat_id)]
    return web.json_response({"messages": messages, "complete": complete})


async def handle_calls(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    token, method = request.query.get("token"), request.query.get("method")
    calls = [
        asdict(c)
        for c in state.calls
        if (token is None or c.token == token) and (method is None or c.method == method)
    ]
    return web.json_response({"calls": calls})


async def handle_webhooks(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({token: asdict(w) for token, w in state.webhooks.items()})


async def handle_set_fault(request: web.Request) -> web.Response:
    """``POST /_fake/faults {"token"?, "method"?, "mode": "502"|"close"|null, "times"?}``."""
    state = request.app[STATE_KEY]
    body = await request.json()
    key = (str(body.get("token") or ANY), str(body.get("method") or ANY))
    mode = body.get("mode")
    if mode is None:
        state.faults.pop(key, None)
        return web.json_response({"ok": True})
    try:
        times = body.get("times")
        state.faults[key] = _FaultRule(FaultMode(str(mode)), None if times is None else int(times))
    except ValueError as e:
        raise web.HTTPBadRequest(text=str(e)) from e
    return web.json_response({"ok": True})


async def handle_inject_update(request: web.Request) -> web.Response:
    """``POST /_fake/updates {"token", "update"}``: queue an update for ``getUpdates``."""
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("update"), dict):
        raise web.HTTPBadRequest(text='expected {"token": ..., "update": {...}}')
    try:
        update_id = request.app[STATE_KEY].updates.inject(str(body.get("token")), body["update"])
    except ValueError as e:
        raise web.HTTPBadRequest(text=str(e)) from e
    return web.json_response({"update_id": update_id})


async def handle_pending_updates(request: web.Request) -> web.Response:
    """``GET /_fake/updates?token=``: a bot's unconfirmed updates."""
    token = request.query.get("token", "")
    return web.json_response({"updates": request.app[STATE_KEY].updates.pending(token)})


async def handle_clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return web.json_response({"ok": True})


async def handle_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})


def create_app(state: FakeTelegramState | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state if state is not None else FakeTelegramState()
    app.router.add_route("*", "/bot{token}/{method}", handle_bot_method)
    app.router.add_get("/file/bot{token}/{path:.+}", handle_file)
    app.router.add_get("/_fake/sent", handle_sent)
    app.router.add_get("/_fake/calls", handle_calls)
    app.router.add_get("/_fake/webhooks", handle_webhooks)
    app.router.add_post("/_fake/faults", handle_set_fault)
    app.router.add_delete("/_fake/faults", handle_clear_faults)
    app.router.add_post("/_fake/updates", handle_inject_update)
    app.router.add_get("/_fake/updates", handle_pending_updates)
    app.router.add_post("/_fake/reset", handle_reset)
    return app


class FakeTelegram(AppServer):
    """In-process runner: ``async with FakeTelegram(host="127.0.0.1", port=0) as tg: tg.base_url``.

    ``base_url`` is what goes into ``channels.telegram.apiRoot``.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, strict_webhooks: bool = False
    ) -> None:
        super().__init__(host=host, port=port)
        self.state = FakeTelegramState(strict_webhooks=strict_webhooks)

    @property
    def strict_webhooks(self) -> bool:
        """Refuse webhook URLs as Telegram does (see :func:`webhook_refusal`)."""
        return self.state.strict_webhooks

    @strict_webhooks.setter
    def strict_webhooks(self, strict: bool) -> None:
        self.state.strict_webhooks = strict

    def build_app(self) -> web.Application:
        return create_app(self.state)

    def sent(self, token: str | None = None, chat_id: str | int | None = None) -> list[SentMessage]:
        """Recorded ``sendMessage``/``editMessageText`` calls, oldest first."""
        return self.state.sent(token, chat_id)

    def calls(self, token: str | None = None, method: str | None = None) -> list[BotApiCall]:
        return [
            c
            for c in self.state.calls
            if (token is None or c.token == token) and (method is None or c.method == method)
        ]

    @property
    def webhooks(self) -> dict[str, WebhookRegistration]:
        return self.state.webhooks

    async def wait_for_messages(
        self,
        token: str | None,
        count: int,
        timeout: float = 10.0,
        *,
        chat_id: str | int | None = None,
    ) -> list[SentMessage]:
        """Wait until ``count`` messages were sent; raises TimeoutError listing what was seen."""
        ok = await self.state.changes.wait_until(
            lambda: len(self.state.sent(token, chat_id)) >= count, timeout
        )
        seen = self.state.sent(token, chat_id)
        if not ok:
            raise TimeoutError(
                f"expected {count} message(s) for token={token!r} chat={chat_id!r} within "
                f"{timeout}s, got {len(seen)}: {[m.text for m in seen]}"
            )
        return seen

    async def wait_for_calls(
        self,
        token: str | None,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[BotApiCall]:
        ok = await self.state.changes.wait_until(
            lambda: len(self.calls(token, method)) >= count, timeout
        )
        if not ok:
            raise TimeoutError(f"expected {count} {method} call(s) for {token!r} within {timeout}s")
        return self.calls(token, method)

    def set_fault(
        self,
        mode: FaultMode | None,
        *,
        token: str = ANY,
        method: str = ANY,
        times: int | None = None,
    ) -> None:
        """Make ``token``'s ``method`` fail (``times`` calls, or until cleared); None clears it."""
        if mode is None:
            self.state.faults.pop((token, method), None)
        else:
            self.state.faults[(token, method)] = _FaultRule(mode, times)

    def inject_update(self, token: str, update: dict[str, Any]) -> int | None:
        """Queue an update for ``token``'s ``getUpdates`` (its ``update_id``, assigned if
        missing; None when the bot's ``allowed_updates`` exclude it)."""
        return self.state.updates.inject(token, update)

    def pending_updates(self, token: str) -> list[dict[str, Any]]:
        """``token``'s updates ``getUpdates`` has not had confirmed yet."""
        return self.state.updates.pending(token)

    def terminated_polls(self, token: str) -> int:
        """How many of ``token``'s long polls a concurrent ``getUpdates`` ended with 409."""
        return self.state.updates.terminated(token)

    def put_file(self, token: str, file_path: str, content: bytes) -> None:
        """Serve ``content`` to ``token`` at ``/file/bot<token>/<file_path>`` (and ``getFile``)."""
        self.state.files[(token, file_path)] = content

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def reset(self) -> None:
        self.state.reset()


main = ServingMain(
    "Fake Telegram Bot API on loopback; prints its base URL (the apiRoot).", FakeTelegram
)


if __name__ == "__main__":
    raise SystemExit(main())
