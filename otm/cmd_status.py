"""`otm status` and `otm logs`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated

import typer

from otm.client import ApiError, CliError, QueryValue, UsageError
from otm.cmd_common import DocOutputOpt, TenantArg, make_client, out, tenant_id
from otm.output import DocFormat, parse_duration, render_status
from otm.reconnect import line_stamp, reconnecting
from otm.terminal import strip_terminal_controls


class LogContainer(StrEnum):
    gateway = "gateway"
    restore = "restore"
    sync = "sync"


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
    timestamps: Annotated[
        bool,
        typer.Option(
            "--timestamps", help="Prefix each line with its time (local lines always have one)."
        ),
    ] = False,
    previous: Annotated[
        bool,
        typer.Option("--previous", "-p", help="The agent's previous run (before the last start)."),
    ] = False,
    container: Annotated[
        LogContainer,
        typer.Option(
            "--container",
            "-c",
            help="Kubernetes: the pod's gateway, its restore init container or its sync sidecar.",
        ),
    ] = LogContainer.gateway,
) -> None:
    """Print the tenant agent's log (Ctrl-C ends -f)."""
    tid = tenant_id(name)
    since_s = None
    if since is not None:
        try:
            since_s = parse_duration(since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    extra = {
        "timestamps": "true" if timestamps else None,
        "previous": "true" if previous else None,
        "container": container.value if container != LogContainer.gateway else None,
    }
    if follow and not previous:
        follow_logs(ctx, tid, since_s=since_s, tail=tail, extra=extra)
        return
    query = {"since_s": since_s, "tail": tail, **extra}
    lines = make_client(ctx).stream_lines(f"/v1/tenants/{tid}/logs", query=query, read_timeout=60.0)
    try:
        for line in lines:
            _echo_agent_line(line)
    except ApiError as exc:
        raise _unsupported(exc) from None
    finally:
        lines.close()


def _unsupported(exc: ApiError) -> CliError:
    if exc.status in (404, 405) and "tenant" not in exc.message:
        return CliError("this daemon does not support `logs` yet (upgrade it)")
    return exc


def _echo_agent_line(line: str) -> None:
    # Agent logs are written by tenant code: no escape sequence reaches the terminal,
    # followed (-f) or not.
    typer.echo(strip_terminal_controls(line))


def follow_logs(
    ctx: typer.Context,
    tid: str,
    *,
    since_s: int | None,
    tail: int | None,
    extra: dict[str, str | None] | None = None,
    max_reconnects: int | None = None,
) -> None:
    """`logs -f`: follows the tenant across sleep and wake (the daemon does) and across
    a daemon restart (this reconnects, skipping lines it already printed)."""
    state: dict[str, float | str | None] = {"last_stamp": None, "last_at": None}

    def open_stream(again: bool) -> Iterator[str]:
        query: dict[str, QueryValue] = {"follow": "true", **(extra or {})}
        if again:
            last_at = state["last_at"]
            # Only what the daemon logged since the last line we saw (plus slack).
            query["since_s"] = (
                int(time.monotonic() - float(last_at)) + 5 if last_at is not None else since_s
            )
        else:
            query.update(since_s=since_s, tail=tail)
        return make_client(ctx).stream_lines(
            f"/v1/tenants/{tid}/logs", query=query, read_timeout=None
        )

    try:
        for line in reconnecting(open_stream, what="the log", max_reconnects=max_reconnects):
            stamp = line_stamp(line)
            last = state["last_stamp"]
            if stamp is not None:
                if isinstance(last, str) and stamp <= last:
                    continue  # printed before the reconnect
                state["last_stamp"] = stamp
            state["last_at"] = time.monotonic()
            _echo_agent_line(line)
    except ApiError as exc:
        raise _unsupported(exc) from None


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("logs")(logs)
