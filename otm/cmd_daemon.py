"""`otm daemon`: run the daemon in the foreground (same as `python -m daemon`).

Only flags the user typed override settings, so a flag's default never shadows
``OTM_*`` environment variables or the YAML file (precedence: flags > env > file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.settings import SettingsError, load_settings
from otm.client import UsageError


def _typed(ctx: Any, name: str) -> bool:  # a typer or (root) click Context
    source = ctx.get_parameter_source(name)
    # ParameterSource lives in typer's private click copy; compare by name.
    return source is not None and source.name == "COMMANDLINE"


def daemon(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Embedded default's data directory.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", metavar="FILE", help="YAML settings file (also OTM_CONFIG)."),
    ] = None,
    router_host: Annotated[str | None, typer.Option(help="Webhook ingress bind address.")] = None,
    router_port: Annotated[int | None, typer.Option(help="Webhook ingress port (0: any).")] = None,
    admin_host: Annotated[str | None, typer.Option(help="Admin API bind address.")] = None,
    admin_port: Annotated[int | None, typer.Option(help="Admin API port (0: any).")] = None,
    model_gateway_port: Annotated[
        int | None,
        typer.Option(help="Agents' port: model gateway, Bot API relay (0: any)."),
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Shared Redis; unset: a private redis-server.")
    ] = None,
    registry: Annotated[str | None, typer.Option(help="sqlite | dynamodb")] = None,
    state_store: Annotated[str | None, typer.Option(help="dir | s3")] = None,
    runtime: Annotated[str | None, typer.Option(help="local | kubernetes")] = None,
    kubeconfig: Annotated[str | None, typer.Option(help="Kubeconfig path.")] = None,
    public_base_url: Annotated[
        str | None, typer.Option(help="Public URL Telegram reaches the router at.")
    ] = None,
    telegram_api_base: Annotated[str | None, typer.Option(help="Bot API root URL.")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING, ...")] = None,
    log_format: Annotated[str | None, typer.Option(help="text | json")] = None,
) -> None:
    """Run the daemon until SIGTERM/Ctrl-C (the admin token is env/file only, never a flag)."""
    flags = {
        name: value for name, value in ctx.params.items() if name != "config" and _typed(ctx, name)
    }
    root = ctx.find_root()
    if "data_dir" not in flags and _typed(root, "data_dir"):
        flags["data_dir"] = root.params["data_dir"]  # `otm --data-dir X daemon`
    try:
        settings = load_settings(flags=flags, config_file=config)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    from daemon.__main__ import main as run_daemon  # aiohttp etc. only for this command

    raise typer.Exit(run_daemon(settings))


def register(app: typer.Typer) -> None:
    app.command("daemon")(daemon)
