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

import time
import zlib
from pathlib import Path
from typing import Annotated, Any

import typer

from otm.client import AdminClient, CliError, Target
from otm.cmd_common import duration_seconds, make_client, tenant_id

STARTING_NOTICE = "🏗 Starting up, please wait..."  # same text as daemon.msgpath.wake
POLL_S = 5.0
"""Between two looks at the tenant's status while waiting (a failed wake ends the wait)."""
DEFAULT_TIMEOUT_S = 120.0
"""Longer than a real OpenClaw's wake after sleep (~30 s) plus a slow model's first turn."""
HELD = ("suspended", "failed")


class ChatError(CliError):
    pass


def default_chat_id(tenant_id: str) -> int:
    """A stable per-tenant chat id, so replies of two tenants never mix in the fake."""
    return 100_000 + zlib.crc32(tenant_id.encode()) % 900_000_000


def _sent(api_base: str, chat_id: int, count: int, timeout: float) -> list[dict[str, Any]]:
    """Messages the fake Bot API recorded for a chat (waits for ``count`` of them)."""
    fake = AdminClient(Target(server=api_base, token=None, data_dir=Path()), timeout=timeout + 10)
    try:
        body = fake.get("/_fake/sent", chat_id=chat_id, count=count, timeout=timeout)
    except CliError as exc:
        raise ChatError(f"cannot read replies from the fake Bot API at {api_base}: {exc}") from None
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
        str,
        typer.Option(
            "--timeout", metavar="DURATION", help="How long to wait for the reply (90s, 2m)."
        ),
    ] = f"{DEFAULT_TIMEOUT_S:.0f}s",
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
    wait_s = duration_seconds("--timeout", timeout)
    typer.echo(run_chat(make_client(ctx), tenant, text, chat_id, wait_s, telegram_api_base))


def run_chat(
    admin: AdminClient,
    tenant: str,
    text: str,
    chat_id: int | None,
    timeout: float,
    telegram_api_base: str | None,
) -> str:
    tenant = tenant_id(tenant)
    if not telegram_api_base:
        # The daemon knows which Bot API it talks to (the fake one in the demo).
        telegram_api_base = admin.get("/v1/status")["daemon"].get("telegram_api_base")
    if not telegram_api_base:
        raise ChatError("the daemon does not say which Bot API it uses: pass --telegram-api-base")
    api_base = telegram_api_base.rstrip("/")
    chat_id = default_chat_id(tenant) if chat_id is None else chat_id
    seen = len(_sent(api_base, chat_id, 0, 0))
    admin.request("POST", f"/v1/tenants/{tenant}/simulate", body={"text": text, "chat_id": chat_id})
    _raise_if_held(admin, tenant)
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        messages = _sent(api_base, chat_id, seen + 1, min(remaining, POLL_S))
        for message in messages[seen:]:
            seen += 1
            if message.get("text") == STARTING_NOTICE:
                typer.echo(f"{tenant}: {STARTING_NOTICE}", err=True)
                continue
            return str(message.get("text", ""))
        _raise_if_held(admin, tenant)  # a wake that failed for good ends the wait
    raise ChatError(
        f"no reply from {tenant} within {timeout:.0f}s; the message stays buffered "
        f"(status {admin.get(f'/v1/tenants/{tenant}').get('status')}; see `otm logs {tenant}`, "
        "or wait longer with --timeout)"
    )


def _raise_if_held(admin: AdminClient, tenant: str) -> None:
    """A suspended or failed tenant will not answer: say why instead of timing out."""
    record = admin.get(f"/v1/tenants/{tenant}")
    status = record.get("status")
    if status not in HELD:
        return
    reason = f" ({record['status_reason']})" if record.get("status_reason") else ""
    raise ChatError(
        f"tenant {tenant} is {status}{reason}: the message is held in its buffer and is "
        f"delivered after `otm tenant resume {tenant}`"
        + (f" (see `otm logs {tenant}`)" if status == "failed" else "")
    )


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
