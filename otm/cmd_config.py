"""`otm config get [KEY] | set KEY=VALUE...`: the live config shared by all replicas."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from otm.client import UsageError
from otm.cmd_common import DocOutputOpt, complete_config_key, make_client, out
from otm.output import DocFormat, parse_duration, render_config

app = typer.Typer(
    name="config",
    help="Live config (warm pool, idle timeout, ...) shared by every daemon replica.",
    no_args_is_help=True,
)


@app.command("get")
def get_config(
    ctx: typer.Context,
    key: Annotated[
        str | None,
        typer.Argument(metavar="KEY", help="One key only.", autocompletion=complete_config_key),
    ] = None,
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Show the live config, or one value."""
    config: dict[str, Any] = make_client(ctx).get("/v1/config")
    if key is None:
        out(render_config(config, output))
        return
    if key not in config:
        raise UsageError(f"unknown config key {key!r} (known: {', '.join(sorted(config))})")
    if output == DocFormat.table:
        out(str(config[key]))
    else:
        out(render_config({key: config[key]}, output))


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` arguments; integers stay integers, ``*_s`` keys take durations (10m)."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UsageError(f"invalid argument {pair!r}: expected KEY=VALUE")
        value: Any = raw.strip()
        if value.lstrip("-").isdigit():
            value = int(value)
        elif key.endswith("_s"):
            # An invalid duration goes as is: the daemon names the offending key.
            with contextlib.suppress(ValueError):
                value = parse_duration(value)
        changes[key] = value
    return changes


def _complete_assignment(incomplete: str) -> list[str]:
    if "=" in incomplete:
        return []
    return [f"{key}=" for key in complete_config_key(incomplete)]


@app.command("set")
def set_config(
    ctx: typer.Context,
    assignments: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=VALUE...",
            help="Keys to change (durations for *_s keys: 90s, 15m, 1h).",
            autocompletion=_complete_assignment,
        ),
    ],
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Change live config keys (validated by the daemon; all or nothing)."""
    changes = parse_assignments(assignments)
    config = make_client(ctx).request("PATCH", "/v1/config", body=changes)
    out(render_config(config, output))
