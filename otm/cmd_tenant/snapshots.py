"""`otm tenant snapshots ID` and `otm tenant restore ID --at TIME|--snapshot KEY`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from otm.client import UsageError
from otm.cmd_common import (
    DocOutputOpt,
    TenantArg,
    duration_seconds,
    make_client,
    now,
    out,
    tenant_id,
)
from otm.output import DocFormat, age_since, human_size, render_table, to_json, to_yaml

SNAPSHOT_HEADERS = ["TAKEN", "AGE", "TRIGGER", "SIZE", "KEY"]
# A restore sleeps the agent (final sync), then wakes it on the restored state.
RESTORE_TIMEOUT_S = 720.0


def snapshot_row(item: dict[str, Any], at: datetime) -> list[str]:
    return [
        item["taken_at"],
        age_since(item["taken_at"], at),
        item["trigger"],
        human_size(item["size"]),
        item["key"],
    ]


def parse_time(text: str, at: datetime) -> datetime:
    """RFC 3339 (a time without zone is UTC), or a duration ago: ``2h``, ``1d12h``."""
    try:
        return at - timedelta(seconds=duration_seconds("--at", text))
    except UsageError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--at: expected an RFC 3339 time (2026-01-31T12:00:00Z) or a duration ago "
            f"(2h), got {text!r}"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def snapshots(ctx: typer.Context, name: TenantArg, output: DocOutputOpt = DocFormat.table) -> None:
    """A tenant's snapshot history, newest first (every sleep, and periodically while its
    agent runs): what `otm tenant restore` can go back to."""
    tid = tenant_id(name)
    body = make_client(ctx).get(f"/v1/tenants/{tid}/snapshots")
    if output == DocFormat.json:
        out(to_json(body))
    elif output == DocFormat.yaml:
        out(to_yaml(body))
    elif not body["items"]:
        typer.echo(f"No snapshots of tenant {tid}.", err=True)
    else:
        at = now()
        out(render_table(SNAPSHOT_HEADERS, [snapshot_row(i, at) for i in body["items"]]))


def restore(
    ctx: typer.Context,
    name: TenantArg,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="The newest snapshot at or before TIME: RFC 3339, or a duration ago (2h).",
        ),
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", metavar="KEY", help="This snapshot (a KEY from `snapshots`)."),
    ] = None,
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Put the tenant to sleep (messages wait in its buffer), make a snapshot its state,
    and wake it on that state. The state it had is kept in the history."""
    tid = tenant_id(name)
    if (at is None) == (snapshot is None):
        raise UsageError("give exactly one of --at TIME and --snapshot KEY")
    body: dict[str, str] = {}
    if snapshot is not None:
        body["snapshot"] = snapshot
    else:
        assert at is not None
        chosen = parse_time(at, now()).astimezone(UTC)
        body["at"] = chosen.isoformat().replace("+00:00", "Z")
    result = make_client(ctx).request(
        "POST", f"/v1/tenants/{tid}/restore", body=body, timeout=RESTORE_TIMEOUT_S
    )
    if output == DocFormat.json:
        out(to_json(result))
    elif output == DocFormat.yaml:
        out(to_yaml(result))
    else:
        restored = result["restored"]
        out(
            f"tenant/{tid} restored to {restored['key']} (taken {restored['taken_at']}); "
            f"now {result['tenant'].get('status')}"
        )


def register(app: typer.Typer) -> None:
    app.command("snapshots")(snapshots)
    app.command("restore")(restore)
