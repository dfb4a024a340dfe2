"""`otm rollout start|status|pause|resume|rollback`: fleet image rollouts in waves."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from otm.client import UsageError
from otm.cmd_common import DocOutputOpt, make_client, out
from otm.output import DocFormat, format_duration, parse_duration, to_json, to_yaml

app = typer.Typer(
    name="rollout",
    help="Move tenants to a new agent image in health-gated waves, and back.",
    no_args_is_help=True,
)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def render_rollout(doc: Mapping[str, Any] | None, fmt: DocFormat) -> str:
    if fmt == DocFormat.json:
        return to_json({"rollout": doc})
    if fmt == DocFormat.yaml:
        return to_yaml({"rollout": doc})
    if doc is None:
        return "no rollout"
    steps = ", ".join(_percent(s) for s in doc["steps"])
    lines = [
        f"rollout  {doc['rollout_id']}",
        f"image    {doc['image']}",
        f"status   {doc['status']}",
        f"wave     {doc['wave_number']}/{len(doc['steps'])} ({_percent(doc['fraction'])};"
        f" steps {steps})",
        f"selector {doc['selector'] or '(all tenants)'}",
        f"pause    {format_duration(doc['pause_s'])}",
        f"moved    {doc['moved']} tenant(s)",
    ]
    if doc.get("wave_started_at"):
        lines.append(f"in wave  {format_duration(max(0, time.time() - doc['wave_started_at']))}")
    for side in ("new", "old"):
        h = doc["health"][side]
        lines.append(
            f"{side} image: {h['wakes_ok']} wakes ok, {h['wakes_failed']} failed, "
            f"{h['agents_lost']} lost, {h['agent_5xx']} agent 5xx "
            f"(error rate {h['error_rate']:.0%})"
        )
    if doc.get("reason"):
        lines.append(f"reason   {doc['reason']}")
    return "\n".join(lines)


@app.command("start")
def start(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The new agent image.")],
    steps: Annotated[
        str, typer.Option("--steps", help="Wave sizes, the last 100% (e.g. 5%,25%,100%).")
    ] = "100%",
    selector: Annotated[
        str | None,
        typer.Option("--selector", "-l", help="Only tenants with these labels (k=v,...)."),
    ] = None,
    pause: Annotated[
        str, typer.Option("--pause", metavar="DURATION", help="Least time per wave (10m).")
    ] = "0s",
    min_wakes: Annotated[
        int,
        typer.Option(
            "--min-wakes", min=0, help="Healthy wakes on the new image a wave needs to pass."
        ),
    ] = 1,
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Start moving tenants to IMAGE, wave by wave, at their next sleep/wake."""
    try:
        pause_s = parse_duration(pause)
    except ValueError as exc:
        raise UsageError(f"--pause: {exc}") from None
    body: dict[str, Any] = {
        "image": image,
        "steps": steps,
        "pause_s": pause_s,
        "gate": {"min_wakes": min_wakes},
    }
    if selector:
        body["selector"] = selector
    doc = make_client(ctx).request("POST", "/v1/rollout", body=body)
    out(render_rollout(doc["rollout"], output))


@app.command("status")
def status(ctx: typer.Context, output: DocOutputOpt = DocFormat.table) -> None:
    """The current (or last) rollout: wave, tenants moved, health of both images."""
    out(render_rollout(make_client(ctx).get("/v1/rollout")["rollout"], output))


@app.command("pause")
def pause_rollout(ctx: typer.Context, output: DocOutputOpt = DocFormat.table) -> None:
    """Stop moving tenants and advancing waves (the health gate still rolls back)."""
    doc = make_client(ctx).request("POST", "/v1/rollout/pause", body={})
    out(render_rollout(doc["rollout"], output))


@app.command("resume")
def resume_rollout(ctx: typer.Context, output: DocOutputOpt = DocFormat.table) -> None:
    """Continue a paused rollout."""
    doc = make_client(ctx).request("POST", "/v1/rollout/resume", body={})
    out(render_rollout(doc["rollout"], output))


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (shown in the rollout's status).")
    ] = None,
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Move every moved tenant back to its previous image (running ones at their sleep)."""
    body = {"reason": reason} if reason else {}
    doc = make_client(ctx).request("POST", "/v1/rollout/rollback", body=body)
    out(render_rollout(doc["rollout"], output))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rollout")
