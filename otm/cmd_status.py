"""`otm status` and `otm logs`."""

from __future__ import annotations

from typing import Annotated

import typer

from otm.client import ApiError, CliError, UsageError
from otm.cmd_common import DocOutputOpt, TenantArg, make_client, out, tenant_id
from otm.output import DocFormat, parse_duration, render_status
from otm.terminal import strip_terminal_controls


def status(ctx: typer.Context, output: DocOutputOpt = DocFormat.table) -> None:
    """Daemon, Redis, registry, runtime and warm pool at a glance."""
    out(render_status(make_client(ctx).get("/v1/status"), output))


def logs(
    ctx: typer.Context,
    name: TenantArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION", help="Only lines newer than this (10m, 1h)."),
    ] = None,
    tail: Annotated[
        int | None, typer.Option("--tail", metavar="N", help="Only the last N lines.", min=0)
    ] = None,
) -> None:
    """Print the tenant agent's log (Ctrl-C ends -f)."""
    tid = tenant_id(name)
    since_s = None
    if since is not None:
        try:
            since_s = parse_duration(since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    query = {"follow": "true" if follow else None, "since_s": since_s, "tail": tail}
    lines = make_client(ctx).stream_lines(
        f"/v1/tenants/{tid}/logs", query=query, read_timeout=None if follow else 60.0
    )
    try:
        for line in lines:
            # Agent logs are written by tenant code: no escape sequence reaches the terminal.
            typer.echo(strip_terminal_controls(line))
    except ApiError as exc:
        if exc.status in (404, 405) and "tenant" not in exc.message:
            raise CliError("this daemon does not support `logs` yet (upgrade it)") from None
        raise
    finally:
        lines.close()


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("logs")(logs)
