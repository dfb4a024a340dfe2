"""`otm tenant usage [ID] --since 24h` and `otm tenant rotate-key ID` (model gateway)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from otm.client import UsageError
from otm.cmd_common import DocOutputOpt, make_client, out, tenant_id
from otm.output import DocFormat, render_table, to_json, to_yaml

USAGE_HEADERS = ["TENANT", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "COST"]
_SINCE = re.compile(r"^\d+[smhd]$")

SinceOpt = Annotated[
    str, typer.Option("--since", metavar="DURATION", help="Window: 30m, 24h, 7d (default 24h).")
]


def format_cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}"


def usage_row(item: dict[str, Any]) -> list[str]:
    return [
        item["tenant_id"],
        str(item["requests"]),
        str(item["prompt_tokens"]),
        str(item["completion_tokens"]),
        str(item["total_tokens"]),
        format_cost(item.get("cost_usd")),
    ]


def usage(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[TENANT]", show_default=False)] = None,
    since: SinceOpt = "24h",
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Model usage per tenant through the gateway: requests, tokens and estimated cost."""
    if not _SINCE.match(since):
        raise UsageError(f"--since: expected a duration like 30m, 24h or 7d, got {since!r}")
    query: dict[str, str] = {"since": since}
    if name is not None:
        query["tenant"] = tenant_id(name)
    body = make_client(ctx).get("/v1/usage", **query)
    if output == DocFormat.json:
        out(to_json(body))
    elif output == DocFormat.yaml:
        out(to_yaml(body))
    else:
        out(render_table(USAGE_HEADERS, [usage_row(i) for i in body["items"]]))


def rotate_key(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="TENANT")]) -> None:
    """Mint a new model key: the old one is refused at once; the agent gets the new one at
    its next wake (`otm tenant sleep` first to switch a running agent now)."""
    tid = tenant_id(name)
    make_client(ctx).request("POST", f"/v1/tenants/{tid}/rotate-key")
    out(f"tenant/{tid} model key rotated")


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
    app.command("rotate-key")(rotate_key)
