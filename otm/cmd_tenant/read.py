"""`otm tenant list|get|describe` (reads, including `list -w`); the writes live in
otm/cmd_tenant/write.py and are registered on the same sub-app by otm/cli.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

import typer

from daemon.model import TenantStatus
from otm.client import AdminClient, ApiError, CliError, UsageError
from otm.cmd_common import (
    TenantArg,
    TenantsArg,
    complete_label,
    make_client,
    now,
    out,
    tenant_id,
)
from otm.describe_view import render_describe
from otm.output import (
    TENANT_HEADERS,
    TENANT_WIDE_HEADERS,
    DocFormat,
    Format,
    TablePrinter,
    tenant_name,
    tenant_row,
    to_json,
    to_yaml,
)
from otm.output_spec import ListOutputOpt, ShowLabelsOpt, parse_output, render
from otm.reconnect import reconnecting

app = typer.Typer(
    name="tenant",
    help="Tenants: one Telegram bot and its OpenClaw agent each.",
    no_args_is_help=True,
)

SelectorOpt = Annotated[
    str | None,
    typer.Option(
        "--selector",
        "-l",
        metavar="SELECTOR",
        help="Label selector: k=v, k!=v, k, !k, 'k in (a,b)', 'k notin (a,b)' (comma: AND).",
        autocompletion=complete_label,
    ),
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
    output: ListOutputOpt = "table",
    show_labels: ShowLabelsOpt = False,
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
    spec = parse_output(output)
    query = {"status": status.value if status else None, "selector": selector or None}
    if watch:
        if spec.fmt is None:
            raise UsageError("-w prints table, wide, json, yaml or name (not templates)")
        watch_tenants(
            lambda: make_client(ctx),
            query,
            spec.fmt,
            headers=not no_headers,
            max_events=max_events,
        )
        return
    items = client.get("/v1/tenants", **query)["items"]
    if not items and spec.fmt in (Format.table, Format.wide, None) and not spec.jsonpath:
        typer.echo("No tenants found.", err=True)
        return
    out(render(items, spec, now=now(), headers=not no_headers, show_labels=show_labels))


@app.command("get")
def get_tenants(
    ctx: typer.Context,
    names: TenantsArg,
    output: ListOutputOpt = "table",
    show_labels: ShowLabelsOpt = False,
    no_headers: NoHeadersOpt = False,
) -> None:
    """Show one or more tenants."""
    spec = parse_output(output)
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
        out(
            render(
                items,
                spec,
                now=now(),
                single=len(ids) == 1,
                headers=not no_headers,
                show_labels=show_labels,
            )
        )
    if missing:
        for message in missing[:-1]:
            typer.echo(f"error: {message}", err=True)
        raise CliError(missing[-1])


@app.command("describe")
def describe_tenant(
    ctx: typer.Context,
    name: TenantArg,
    output: Annotated[
        DocFormat,
        typer.Option(
            "--output",
            "-o",
            help="table: the text view; json/yaml: the same fields as a document.",
            case_sensitive=False,
        ),
    ] = DocFormat.table,
) -> None:
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
    if output == DocFormat.table:
        try:  # the live default idle timeout gives a running tenant its deadline
            default_idle = client.get("/v1/config").get("default_idle_timeout_s")
        except ApiError:
            default_idle = None
        out(
            render_describe(
                tenant, events[-20:], buffer, now=now(), default_idle_timeout_s=default_idle
            )
        )
        return
    doc = {"tenant": tenant, "buffer": buffer, "events": events[-20:]}
    out(to_json(doc) if output == DocFormat.json else to_yaml(doc))


# -- watch ---------------------------------------------------------------------
class WatchPrinter:
    """Prints the first snapshot like `list`, then one line (or document) per change.
    Later snapshots (after a reconnect, or when the daemon resyncs a slow reader)
    print only what changed since: no duplicate rows."""

    def __init__(self, fmt: Format, *, headers: bool) -> None:
        self.fmt = fmt
        wide = fmt == Format.wide
        self.wide = wide
        self.table = TablePrinter(
            TENANT_WIDE_HEADERS if wide else TENANT_HEADERS, show_headers=headers
        )
        self.started = False
        self.printed: dict[str, str] = {}
        """tenant id → its last printed record (JSON), to skip unchanged ones."""

    def snapshot(self, items: list[Mapping[str, Any]]) -> Iterator[str]:
        if self.fmt in (Format.table, Format.wide) and not self.started:
            self.started = True
            for item in items:
                self._remember(item)
            rows = [tenant_row(t, wide=self.wide, now=now()) for t in items]
            yield self.table.render(rows)
            return
        present = {str(t.get("tenant_id")) for t in items}
        for gone in [t for t in self.printed if t not in present]:
            yield self.one({"tenant_id": gone, "status": "deleted"})
        for item in items:
            if self.printed.get(str(item.get("tenant_id"))) != _fingerprint(item):
                yield self.one(item)

    def one(self, tenant: Mapping[str, Any]) -> str:
        self._remember(tenant)
        if self.fmt == Format.json:
            return json.dumps(tenant, separators=(",", ":"))  # one line per change
        if self.fmt == Format.yaml:
            return "---\n" + to_yaml(dict(tenant))
        if self.fmt == Format.name:
            return tenant_name(tenant)
        return self.table.row(tenant_row(tenant, wide=self.wide, now=now()))

    def _remember(self, tenant: Mapping[str, Any]) -> None:
        tenant_id = str(tenant.get("tenant_id"))
        if tenant.get("status") == "deleted":
            self.printed.pop(tenant_id, None)
        else:
            self.printed[tenant_id] = _fingerprint(tenant)


def _fingerprint(tenant: Mapping[str, Any]) -> str:
    return json.dumps(tenant, sort_keys=True, separators=(",", ":"))


def watch_tenants(
    make: Callable[[], AdminClient],
    query: dict[str, str | None],
    fmt: Format,
    *,
    headers: bool,
    max_events: int | None,
    max_reconnects: int | None = None,
) -> None:
    """Follow `GET /v1/watch` until Ctrl-C (or ``max_events`` changes, for tests),
    reconnecting when the daemon restarts."""
    printer = WatchPrinter(fmt, headers=headers)
    changes = 0

    def open_stream(again: bool) -> Iterator[tuple[str, Any]]:
        return make().stream_events("/v1/watch", query=dict(query))

    events = reconnecting(open_stream, what="the watch", max_reconnects=max_reconnects)
    snapshots = 0
    try:
        for event, data in events:
            if event == "snapshot":
                texts = list(printer.snapshot(data.get("items", [])))
                snapshots += 1
                counted = len(texts) if snapshots > 1 else 0  # the first is the list
            elif event == "tenant":
                texts = [printer.one(data["tenant"])]
                counted = 1
            else:
                continue
            for text in texts:
                out(text)
            changes += counted
            if max_events is not None and counted and changes >= max_events:
                return
    finally:
        events.close()
