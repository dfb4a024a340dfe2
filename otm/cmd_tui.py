"""`otm tui`: the k9s-style dashboard. Textual is imported only when the command runs,
so every other `otm` command starts without it."""

from __future__ import annotations

from typing import Annotated

import typer

from otm.client import AdminClient, resolve_target


def tui(
    ctx: typer.Context,
    readonly: Annotated[
        bool,
        typer.Option(
            "--readonly",
            help="Look, don't touch: wake, sleep, delete and config changes are disabled.",
        ),
    ] = False,
) -> None:
    """Live dashboard of tenants, warm pool and daemon health (--server/--token as for
    every command; keys as in k9s: ? for help)."""
    params = ctx.find_root().params
    target = resolve_target(
        server=params.get("server"), token=params.get("token"), data_dir=params.get("data_dir")
    )
    AdminClient(target)  # validates the URL: a usage error before the screen takes over
    try:
        from otm.tui.run import run_dashboard
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "textual":
            raise
        # The server image installs no TUI (pyproject's `tui` extra).
        typer.echo("otm tui needs Textual: pip install 'otm[tui]'", err=True)
        raise typer.Exit(1) from None

    run_dashboard(target, readonly=readonly)


def register(app: typer.Typer) -> None:
    app.command("tui")(tui)
