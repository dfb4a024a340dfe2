"""`otm chat TENANT "hello"`: talk to a tenant's agent in the local demo.

The webhook secret never leaves the daemon, so the message does not go through
``/tg/{id}`` like Telegram's would: it is injected with the admin-only
``POST /v1/tenants/{id}/simulate`` (testing/demo endpoint) into the same
durable buffer, and the agent's answer is read back from the fake Bot API's
record (``{telegram_api_base}/_fake/sent``) — so this needs the daemon to run
against the fake Bot API (``python -m otm.devtools.fake_telegram``).

stdlib only (urllib), like the rest of the CLI: `otm` starts fast.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Annotated, Any

import typer

STARTING_NOTICE = "🏗 Starting up, please wait..."  # same text as daemon.wake
MAX_POLL_S = 60.0


class ChatError(Exception):
    pass


def default_chat_id(tenant_id: str) -> int:
    """A stable per-tenant chat id, so replies of two tenants never mix in the fake."""
    return 100_000 + zlib.crc32(tenant_id.encode()) % 900_000_000


def _data_dir(ctx: typer.Context) -> Path:
    given = ctx.find_root().params.get("data_dir")
    if given:
        return Path(given).expanduser()
    if os.environ.get("OTM_DATA_DIR"):
        return Path(os.environ["OTM_DATA_DIR"]).expanduser()
    return Path.home() / ".otm"


def _admin(ctx: typer.Context) -> tuple[str, str | None]:
    """Admin URL and token: root flags > env > the embedded daemon's files."""
    params = ctx.find_root().params
    data_dir = _data_dir(ctx)
    server = params.get("server") or os.environ.get("OTM_SERVER")
    if not server:
        try:
            server = json.loads((data_dir / "daemon.json").read_text())["admin_url"]
        except (OSError, ValueError, KeyError) as exc:
            raise ChatError(
                f"no running daemon found in {data_dir} ({type(exc).__name__}): "
                "start it with `otm daemon`, or set OTM_SERVER"
            ) from None
    token = params.get("token") or os.environ.get("OTM_ADMIN_TOKEN")
    if not token:
        try:
            token = (data_dir / "admin-token").read_text().strip()
        except OSError:
            token = None
    return str(server).rstrip("/"), token


def _request(
    url: str, *, method: str = "GET", body: Any = None, token: str | None = None, timeout: float
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise ChatError(f"{method} {urllib.parse.urlsplit(url).path}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChatError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None


def _sent(api_base: str, chat_id: int, count: int, timeout: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"chat_id": chat_id, "count": count, "timeout": timeout})
    body = _request(f"{api_base}/_fake/sent?{query}", timeout=timeout + 10)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        raise ChatError(f"{api_base} does not look like the fake Bot API (/_fake/sent)")
    return messages


def chat(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(metavar="NAME", help="Tenant id.")],
    text: Annotated[str, typer.Argument(help="Message text to send.")],
    chat_id: Annotated[
        int | None, typer.Option("--chat-id", help="Telegram chat id (default: per tenant).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the reply.")
    ] = 30.0,
    telegram_api_base: Annotated[
        str | None,
        typer.Option(
            "--telegram-api-base",
            envvar="OTM_TELEGRAM_API_BASE",
            help="The fake Bot API the daemon uses (where replies are recorded).",
        ),
    ] = None,
) -> None:
    """Send TEXT to a tenant's agent as a Telegram message and print its reply (local demo)."""
    try:
        reply = run_chat(ctx, tenant, text, chat_id, timeout, telegram_api_base)
    except ChatError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(reply)


def run_chat(
    ctx: typer.Context,
    tenant: str,
    text: str,
    chat_id: int | None,
    timeout: float,
    telegram_api_base: str | None,
) -> str:
    if not telegram_api_base:
        raise ChatError(
            "otm chat reads replies from the fake Bot API: pass --telegram-api-base "
            "or set OTM_TELEGRAM_API_BASE (the daemon's telegram_api_base)"
        )
    api_base = telegram_api_base.rstrip("/")
    chat_id = default_chat_id(tenant) if chat_id is None else chat_id
    server, token = _admin(ctx)
    seen = len(_sent(api_base, chat_id, 0, 0))
    _request(
        f"{server}/v1/tenants/{urllib.parse.quote(tenant)}/simulate",
        method="POST",
        body={"text": text, "chat_id": chat_id},
        token=token,
        timeout=10,
    )
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        messages = _sent(api_base, chat_id, seen + 1, min(remaining, MAX_POLL_S))
        for message in messages[seen:]:
            seen += 1
            if message.get("text") == STARTING_NOTICE:
                typer.echo(f"{tenant}: {STARTING_NOTICE}", err=True)
                continue
            return str(message.get("text", ""))
    raise ChatError(f"no reply from {tenant} within {timeout:.0f}s (see `otm logs {tenant}`)")


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
