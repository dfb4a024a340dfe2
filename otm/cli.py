"""`otm`: the operator CLI (kubectl habits: -o, -w, -l; data on stdout, errors on
stderr). Exit codes: 0 ok; 2 usage and validation errors, found by the CLI or by the
daemon (HTTP 400); 1 everything else (not found, conflicts, daemon unreachable)."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from otm import cmd_access, cmd_config, cmd_daemon, cmd_rollout, cmd_status, help_style
from otm.client import CliError
from otm.cmd_common import warn
from otm.cmd_tenant import model as cmd_tenant_model
from otm.cmd_tenant import read as cmd_tenant
from otm.cmd_tenant import snapshots as cmd_tenant_snapshots
from otm.cmd_tenant import write as cmd_tenant_write

help_style.apply()

GLOBAL_OPTIONS = frozenset({"--server", "--token", "--data-dir"})
# Command modules owned by other work that plug in when present (each has register(app)).
OPTIONAL_COMMANDS = ("otm.cmd_chat", "otm.cmd_tui")


def hoist_global_options(args: list[str]) -> list[str]:
    """Move --server/--token/--data-dir to the front so they work anywhere on the line
    (`otm tenant list --server URL`), as kubectl's global flags do. `otm daemon` keeps
    its own --data-dir flag, so its arguments are left alone."""
    positional = [a for a in args if not a.startswith("-")]
    if positional[:1] == ["daemon"]:
        return args
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg.split("=", 1)[0] in GLOBAL_OPTIONS:
            width = 1 if "=" in arg else 2
            front.extend(args[i : i + width])
            i += width
            continue
        rest.append(arg)
        i += 1
    return front + rest


class OtmGroup(TyperGroup):
    """Root group: global options anywhere; CliError → one line on stderr + exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=OtmGroup,
    name="otm",
    help="Operate the OpenClaw Tenant Manager: one isolated agent per Telegram bot.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold bot tokens
    context_settings={"help_option_names": ["-h", "--help"]},
)


def client_version() -> str:
    try:
        return importlib.metadata.version("otm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"otm {client_version()}")
        raise typer.Exit()


@app.callback()
def root(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="Admin API URL (env OTM_SERVER; default: from DATA_DIR/daemon.json).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            help="Admin token (env OTM_ADMIN_TOKEN; default: DATA_DIR/admin-token).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Local daemon's data dir (env OTM_DATA_DIR; default ~/.otm).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the CLI version."
        ),
    ] = False,
) -> None:
    """otm: tenants, live config, status and logs of an otm daemon."""
    if token is not None:
        warn(
            "--token is visible to other local users in process listings (ps) and stays "
            "in shell history; prefer OTM_ADMIN_TOKEN or the token file (DATA_DIR/admin-token)"
        )


app.add_typer(cmd_tenant.app, name="tenant")
cmd_tenant_write.register(cmd_tenant.app)
cmd_tenant_model.register(cmd_tenant.app)
cmd_tenant_snapshots.register(cmd_tenant.app)
app.add_typer(cmd_config.app, name="config")
cmd_status.register(app)
cmd_daemon.register(app)
cmd_access.register(app)
cmd_rollout.register(app)


@app.command("version")
def version_command(
    ctx: typer.Context,
    client_only: Annotated[
        bool, typer.Option("--client", help="Only the CLI's version (no daemon needed).")
    ] = False,
) -> None:
    """The CLI's and the daemon's versions (like `kubectl version`)."""
    typer.echo(f"Client Version: {client_version()}")
    if client_only:
        return
    from otm.cmd_common import make_client

    daemon = make_client(ctx, timeout=5.0).get("/v1/status").get("daemon") or {}
    typer.echo(f"Server Version: {daemon.get('version') or 'unknown'}")


def _register_optional(target: typer.Typer) -> None:
    for module_name in OPTIONAL_COMMANDS:
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(target)


_register_optional(app)


def main() -> None:
    app(prog_name="otm")
