"""`otm tenant create|update|delete|suspend|resume|wake|sleep`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from otm.client import AdminClient, ApiError, CliError, UsageError
from otm.cmd_common import (
    TenantArg,
    complete_label,
    complete_tenant,
    duration_seconds,
    make_client,
    now,
    out,
    parse_labels,
    read_secret,
    tenant_id,
)
from otm.output import Format, parse_duration, render_tenants

# Waking waits for the agent to boot, sleeping for its final state sync (both minutes).
LIFECYCLE_TIMEOUT_S = 360.0

BotTokenFileOpt = Annotated[
    str | None,
    typer.Option("--bot-token-file", metavar="FILE", help="Read the Telegram bot token from FILE."),
]
BotTokenStdinOpt = Annotated[
    bool, typer.Option("--bot-token-stdin", help="Read the Telegram bot token from stdin.")
]
BotTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--bot-token",
        metavar="TOKEN",
        help="The bot token itself (lands in shell history: prefer --bot-token-file).",
    ),
]
IdleTimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--idle-timeout",
        metavar="DURATION",
        help="Sleep after this much inactivity: 90s, 10m, 1h ('default' to clear).",
    ),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        metavar="KEY=VALUE",
        help="Set a label (repeatable; KEY- removes).",
        autocompletion=complete_label,
    ),
]
ImageOpt = Annotated[str | None, typer.Option("--image", help="Agent image for this tenant.")]
INGRESS_CHOICES = ("webhook", "polling", "default")
IngressOpt = Annotated[
    str | None,
    typer.Option(
        "--ingress",
        metavar="MODE",
        help="How updates arrive: webhook (Telegram POSTs to the router), polling "
        "(getUpdates, no public URL needed) or default (the daemon's setting).",
    ),
]
MaybeOutputOpt = Annotated[
    Format | None,
    typer.Option("--output", "-o", help="Print the tenant in this format.", case_sensitive=False),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Only print what would happen; change nothing.")
]
TimeoutOpt = Annotated[
    str,
    typer.Option("--timeout", metavar="DURATION", help="How long to wait for the daemon (6m)."),
]


def _idle_timeout(text: str | None) -> tuple[bool, int | None]:
    """(given, seconds); 'default' means given-and-None (use the live-config default)."""
    if text is None:
        return False, None
    if text.strip().lower() == "default":
        return True, None
    try:
        return True, parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--idle-timeout: {exc}") from None


def _ingress(text: str | None) -> tuple[bool, str | None]:
    """(given, mode); 'default' means given-and-None (use the daemon's ``ingress`` setting)."""
    if text is None:
        return False, None
    mode = text.strip().lower()
    if mode not in INGRESS_CHOICES:
        raise UsageError(f"--ingress: expected one of {', '.join(INGRESS_CHOICES)}, got {text!r}")
    return True, None if mode == "default" else mode


def _optional_fields(
    *, secret: str | None, idle_timeout: str | None, ingress: str | None
) -> dict[str, Any]:
    """What `create` and `update` send alike, each field only when given: the bot token,
    the idle timeout and the ingress ('default' for either: back to the daemon's setting)."""
    body: dict[str, Any] = {}
    if secret is not None:
        body["bot_token"] = secret
    given, seconds = _idle_timeout(idle_timeout)
    if given:
        body["idle_timeout_s"] = seconds
    ingress_given, mode = _ingress(ingress)
    if ingress_given:
        body["ingress"] = mode
    return body


def _report(tenant: dict[str, Any], output: Format | None, message: str) -> None:
    if output is None:
        out(f"tenant/{tenant.get('tenant_id')} {message}")
    else:
        out(render_tenants([tenant], output, now=now(), single=True))


def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Tenant id (a DNS label).")],
    bot_token_file: BotTokenFileOpt = None,
    bot_token_stdin: BotTokenStdinOpt = False,
    bot_token: BotTokenOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    label: LabelOpt = None,
    image: ImageOpt = None,
    ingress: IngressOpt = None,
    output: MaybeOutputOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Register a tenant (its agent starts on the first message)."""
    body: dict[str, Any] = {"tenant_id": tenant_id(name)}
    secret = read_secret(value=bot_token, file=bot_token_file, stdin=bot_token_stdin)
    body.update(_optional_fields(secret=secret, idle_timeout=idle_timeout, ingress=ingress))
    sets, removes = parse_labels(label or [])
    if removes:
        raise UsageError("--label KEY- (remove) only makes sense with `otm tenant update`")
    if secret is None:
        # A tenant without a bot never gets a message: refused here, not at its first wake.
        raise UsageError(
            "a bot token is required (the tenant's Telegram bot): "
            "--bot-token-file FILE or --bot-token-stdin"
        )
    if sets:
        body["labels"] = sets
    if image is not None:
        body["image"] = image
    client = make_client(ctx)
    if dry_run:
        _must_not_exist(client, body["tenant_id"])
        preview = {k: v for k, v in body.items() if k != "bot_token"}
        preview["has_bot_token"] = True
        _report(preview, output, "created (dry run)")
        return
    tenant = client.request("POST", "/v1/tenants", body=body)
    _report(tenant, output, "created")


def _must_not_exist(client: AdminClient, tid: str) -> None:
    try:
        client.get(f"/v1/tenants/{tid}")
    except ApiError as exc:
        if exc.status == 404:
            return
        raise
    raise CliError(f"tenant {tid!r} already exists")


def update(
    ctx: typer.Context,
    name: TenantArg,
    bot_token_file: BotTokenFileOpt = None,
    bot_token_stdin: BotTokenStdinOpt = False,
    bot_token: BotTokenOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    label: LabelOpt = None,
    image: ImageOpt = None,
    ingress: IngressOpt = None,
    output: MaybeOutputOpt = None,
) -> None:
    """Change a tenant's bot token, idle timeout, labels, image or ingress."""
    tid = tenant_id(name)
    secret = read_secret(value=bot_token, file=bot_token_file, stdin=bot_token_stdin)
    body = _optional_fields(secret=secret, idle_timeout=idle_timeout, ingress=ingress)
    if image is not None:
        body["image"] = image or None
    sets, removes = parse_labels(label or [])
    if not body and not sets and not removes:
        raise UsageError(
            "nothing to update: give --bot-token-file/--bot-token-stdin, --idle-timeout, "
            "--label, --image or --ingress"
        )
    client = make_client(ctx)
    if sets or removes:
        labels = dict(client.get(f"/v1/tenants/{tid}").get("labels") or {})
        labels.update(sets)
        for key in removes:
            labels.pop(key, None)
        body["labels"] = labels
    tenant = client.request("PATCH", f"/v1/tenants/{tid}", body=body)
    _report(tenant, output, "updated")


def delete(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME...",
            help="Tenant ids (or tenant/NAME).",
            autocompletion=complete_tenant,
        ),
    ] = None,
    selector: Annotated[
        str | None,
        typer.Option(
            "--selector",
            "-l",
            metavar="SELECTOR",
            help="Delete the tenants it selects.",
            autocompletion=complete_label,
        ),
    ] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Delete every tenant.")] = False,
    dry_run: DryRunOpt = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask before deleting by -l or --all."),
    ] = False,
) -> None:
    """Delete tenants: stop the agent, remove state and record. Named tenants go without
    a question (like kubectl); -l and --all ask first unless --yes (or --dry-run)."""
    given = sum((bool(names), selector is not None, all_tenants))
    if given != 1:
        raise UsageError("give tenant names, -l SELECTOR or --all (exactly one of them)")
    client = make_client(ctx)
    if names:
        ids = [tenant_id(n) for n in names]
    else:
        items = client.get("/v1/tenants", selector=selector or None)["items"]
        ids = [str(t["tenant_id"]) for t in items]
        if not ids:
            typer.echo("No tenants found.", err=True)
            return
        if not dry_run and not yes:
            _confirm(ids)
    failures: list[str] = []
    for tid in ids:
        try:
            if dry_run:
                client.get(f"/v1/tenants/{tid}")
            else:
                client.request("DELETE", f"/v1/tenants/{tid}", timeout=LIFECYCLE_TIMEOUT_S)
        except ApiError as exc:
            if exc.status != 404:
                raise
            failures.append(exc.message)
            continue
        out(f'tenant "{tid}" deleted' + (" (dry run)" if dry_run else ""))
    if failures:
        for message in failures[:-1]:
            typer.echo(f"error: {message}", err=True)
        raise CliError(failures[-1])


def _confirm(ids: list[str]) -> None:
    """Ask on a terminal; refuse (usage error) where nobody can answer."""
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    if not sys.stdin.isatty():
        raise UsageError(f"this deletes {len(ids)} tenant(s) ({shown}): pass --yes to confirm")
    if not typer.confirm(f"Delete {len(ids)} tenant(s): {shown}?", default=False, err=True):
        raise CliError("nothing deleted")


def _action(client: AdminClient, tid: str, action: str, *, timeout: float, **query: Any) -> Any:
    try:
        return client.request("POST", f"/v1/tenants/{tid}/{action}", query=query, timeout=timeout)
    except ApiError as exc:
        if exc.status in (404, 405) and "tenant" not in exc.message:
            raise CliError(f"this daemon does not support `{action}` yet (upgrade it)") from None
        raise


def suspend(ctx: typer.Context, name: TenantArg, output: MaybeOutputOpt = None) -> None:
    """Hold a tenant: messages keep buffering, the agent is stopped and never woken."""
    tid = tenant_id(name)
    tenant = _action(make_client(ctx), tid, "suspend", timeout=LIFECYCLE_TIMEOUT_S)
    _report(tenant, output, "suspended")


def resume(ctx: typer.Context, name: TenantArg, output: MaybeOutputOpt = None) -> None:
    """Lift a hold (or a failed state); the next or a buffered message wakes the tenant."""
    tid = tenant_id(name)
    tenant = _action(make_client(ctx), tid, "resume", timeout=LIFECYCLE_TIMEOUT_S)
    _report(tenant, output, "resumed")


def wake(
    ctx: typer.Context,
    name: TenantArg,
    wait: Annotated[bool, typer.Option("--wait", help="Return once the agent is running.")] = False,
    timeout: TimeoutOpt = f"{LIFECYCLE_TIMEOUT_S:.0f}s",
    output: MaybeOutputOpt = None,
) -> None:
    """Start the tenant's agent now instead of on its next message."""
    tid = tenant_id(name)
    query = {"wait": "true"} if wait else {}
    wait_s = duration_seconds("--timeout", timeout)
    tenant = _action(make_client(ctx), tid, "wake", timeout=wait_s, **query)
    _report(tenant, output, "running" if wait else "waking")


def sleep(
    ctx: typer.Context,
    name: TenantArg,
    dry_run: DryRunOpt = False,
    timeout: TimeoutOpt = f"{LIFECYCLE_TIMEOUT_S:.0f}s",
    output: MaybeOutputOpt = None,
) -> None:
    """Stop the tenant's agent after its final state sync."""
    tid = tenant_id(name)
    client = make_client(ctx)
    if dry_run:
        tenant = client.get(f"/v1/tenants/{tid}")
        _report(tenant, output, f"asleep (dry run; now {tenant.get('status')})")
        return
    tenant = _action(client, tid, "sleep", timeout=duration_seconds("--timeout", timeout))
    _report(tenant, output, "asleep")


def register(app: typer.Typer) -> None:
    for command in (create, update, delete, suspend, resume, wake, sleep):
        app.command(command.__name__)(command)
