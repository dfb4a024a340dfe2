"""`otm tenant list|get|describe` (reads, including `list -w`); the writes live in
otm/cmd_tenant/write.py and are registered on the same sub-app by otm/cli.py."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer

from daemon.model import TenantStatus
from otm.client import AdminClient, ApiError, CliError
from otm.cmd_common import (
    OutputOpt,
    TenantArg,
    TenantsArg,
    make_client,
    now,
    out,
    tenant_id,
)
from otm.output import (
    TENANT_HEADERS,
    TENANT_WIDE_HEADERS,
    Format,
    TablePrinter,
    render_describe,
    render_tenants,
    tenant_name,
    tenant_row,
    to_yaml,
)

app = typer.Typer(
    name="tenant",
    help="Tenants: one Telegram bot and its OpenClaw agent each.",
    no_args_is_help=True,
)

SelectorOpt = Annotated[
    str | None,
    typer.Option("--selector", "-l", help="Label selector: k=v, k!=v, k, !k (comma-separated)."),
]
StatusOpt = Annotated[
    TenantStatus | None, typer.Option("--status", help="Only tenants in this status.")
]
NoHeadersOpt = Annotated[bool, typer.Option("--no-headers", help="Table without the header.")]


@app.command("list")
def list_tenants(
    ctx: typer.Context,
    selector: SelectorOpt = None,
    status: StatusOpt = None,
    output: OutputOpt = Format.table,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="After the list, print each change.")
    ] = False,
    no_headers: NoHeadersOpt = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", hidden=True, help="Stop after N changes.")
    ] = None,
) -> None:
    """List tenants (like `kubectl get`)."""
    client = make_client(ctx)
    query = {"status": status.value if status else None, "selector": selector or None}
    if watch:
        watch_tenants(client, query, output, headers=not no_headers, max_events=max_events)
        return
    items = client.get("/v1/tenants", **query)["items"]
    if not items and output in (Format.table, Format.wide):
        typer.echo("No tenants found.", err=True)
        return
    out(render_tenants(items, output, now=now(), headers=not no_headers))


@app.command("get")
def get_tenants(
    ctx: typer.Context,
    names: TenantsArg,
    output: OutputOpt = Format.table,
    no_headers: NoHeadersOpt = False,
) -> None:
    """Show one or more tenants."""
    ids = [tenant_id(n) for n in names]
    client = make_client(ctx)
    items: list[dict[str, Any]] = []
    missing: list[str] = []
    for tid in ids:
        try:
            items.append(client.get(f"/v1/tenants/{tid}"))
        except ApiError as exc:
            if exc.status != 404:
                raise
            missing.append(exc.message)
    if items:
        out(render_tenants(items, output, now=now(), single=len(ids) == 1, headers=not no_headers))
    if missing:
        for message in missing[:-1]:
            typer.echo(f"error: {message}", err=True)
        raise CliError(missing[-1])


@app.command("describe")
def describe_tenant(ctx: typer.Context, name: TenantArg) -> None:
    """The tenant's record, buffered messages and recent events."""
    tid = tenant_id(name)
    client = make_client(ctx)
    tenant = client.get(f"/v1/tenants/{tid}")
    events = client.get(f"/v1/tenants/{tid}/events")["items"]
    buffer: dict[str, Any] | None
    try:
        buffer = client.get(f"/v1/tenants/{tid}/buffer")
    except ApiError:
        buffer = None  # a daemon without the buffer endpoint
    out(render_describe(tenant, events[-20:], buffer, now=now()))


# -- watch ---------------------------------------------------------------------
class WatchPrinter:
    """Prints the first snapshot like `list`, then one line (or document) per change."""

    def __init__(self, fmt: Format, *, headers: bool) -> None:
        self.fmt = fmt
        wide = fmt == Format.wide
        self.wide = wide
        self.table = TablePrinter(
            TENANT_WIDE_HEADERS if wide else TENANT_HEADERS, show_headers=headers
        )
        self.started = False

    def snapshot(self, items: list[Mapping[str, Any]]) -> Iterator[str]:
        if self.fmt in (Format.table, Format.wide) and not self.started:
            self.started = True
            rows = [tenant_row(t, wide=self.wide, now=now()) for t in items]
            yield self.table.render(rows)
            return
        for item in items:
            yield self.one(item)

    def one(self, tenant: Mapping[str, Any]) -> str:
        if self.fmt == Format.json:
            return json.dumps(tenant, separators=(",", ":"))  # one line per change
        if self.fmt == Format.yaml:
            return "---\n" + to_yaml(dict(tenant))
        if self.fmt == Format.name:
            return tenant_name(tenant)
        return self.table.row(tenant_row(tenant, wide=self.wide, now=now()))


def watch_tenants(
    client: AdminClient,
    query: dict[str, str | None],
    fmt: Format,
    *,
    headers: bool,
    max_events: int | None,
) -> None:
    """Follow `GET /v1/watch` until Ctrl-C (or ``max_events`` changes, for tests)."""
    printer = WatchPrinter(fmt, headers=headers)
    changes = 0
    stream = client.stream_events("/v1/watch", query=dict(query))
    try:
        for event, data in stream:
            if event == "snapshot":
                for text in printer.snapshot(data.get("items", [])):
                    out(text)
            elif event == "tenant":
                out(printer.one(data["tenant"]))
                changes += 1
                if max_events is not None and changes >= max_events:
                    return
    finally:
        stream.close()
    raise CliError("the daemon closed the watch stream")
