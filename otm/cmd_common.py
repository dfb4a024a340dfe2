"""Helpers shared by the `otm` command modules: client from global flags, output,
client-side validation (usage errors, exit 2) and tenant-name completion."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from daemon.model import InvalidTenantId, validate_tenant_id
from otm.client import AdminClient, UsageError, resolve_target
from otm.output import DocFormat, Format, parse_duration


def make_client(ctx: typer.Context, *, timeout: float | None = None) -> AdminClient:
    """Client for the daemon named by the root's --server/--token/--data-dir (or env/files).
    Reads the root context's params so it also works while completing."""
    params = ctx.find_root().params
    target = resolve_target(
        server=params.get("server"), token=params.get("token"), data_dir=params.get("data_dir")
    )
    if timeout is None:
        return AdminClient(target)
    return AdminClient(target, timeout=timeout)


def out(text: str) -> None:
    """Data goes to stdout (nothing for an empty rendering, like kubectl)."""
    if text:
        typer.echo(text)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def now() -> datetime:
    return datetime.now(UTC)


RESOURCE_PREFIXES = ("tenant/", "tenants/")
"""`otm tenant list -o name` prints tenant/NAME; every command takes it back (xargs)."""


def tenant_id(name: str) -> str:
    """Client-side id check: a malformed id is a usage error (2), not a server round trip.
    Accepts ``tenant/NAME`` as kubectl accepts ``pod/NAME``."""
    for prefix in RESOURCE_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    try:
        return validate_tenant_id(name)
    except InvalidTenantId as exc:
        raise UsageError(str(exc)) from None


def duration_seconds(flag: str, text: str) -> float:
    """A duration flag's value (``90``, ``90s``, ``2m``) in seconds; usage error if not one."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} must be longer than 0s")
    return float(seconds)


def parse_labels(pairs: list[str]) -> tuple[dict[str, str], list[str]]:
    """``k=v`` sets, ``k-`` removes (kubectl label syntax)."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for pair in pairs:
        if "=" in pair:
            key, value = pair.split("=", 1)
            if not key:
                raise UsageError(f"invalid label {pair!r} (expected key=value)")
            sets[key] = value
        elif pair.endswith("-") and len(pair) > 1:
            removes.append(pair[:-1])
        else:
            raise UsageError(f"invalid label {pair!r} (expected key=value, or key- to remove)")
    return sets, removes


def read_secret(
    *, value: str | None, file: str | None, stdin: bool, what: str = "bot token"
) -> str | None:
    """A secret from a file, stdin or (discouraged) a flag; None when none was given."""
    given = [v for v in (value is not None, file is not None, stdin) if v]
    if len(given) > 1:
        raise UsageError(f"give the {what} only once (--bot-token-file, --bot-token-stdin)")
    if value is not None:
        warn(
            "--bot-token leaves the secret in shell history and process listings; "
            "prefer --bot-token-file or --bot-token-stdin"
        )
        secret = value
    elif file is not None:
        try:
            with open(file) as fh:
                secret = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read {what} file {file}: {exc.strerror}") from None
    elif stdin:
        secret = sys.stdin.read()
    else:
        return None
    secret = secret.strip()
    if not secret:
        raise UsageError(f"the {what} is empty")
    return secret


def complete_tenant(ctx: typer.Context, incomplete: str) -> list[str]:
    """Tenant names for shell completion; silently empty if the daemon is not there."""
    try:
        items: list[dict[str, Any]] = make_client(ctx, timeout=1.0).get("/v1/tenants")["items"]
        return [str(t["tenant_id"]) for t in items if str(t["tenant_id"]).startswith(incomplete)]
    except Exception:
        return []


def complete_label(ctx: typer.Context, incomplete: str) -> list[str]:
    """Label keys in use (``tier``), and ``key=value`` pairs once a ``=`` is typed; for
    ``-l`` the prefix before the last comma is kept (``tier=gold,zo`` → ``tier=gold,zone``)."""
    head, _, last = incomplete.rpartition(",")
    prefix = head + "," if head else ""
    try:
        items: list[dict[str, Any]] = make_client(ctx, timeout=1.0).get("/v1/tenants")["items"]
    except Exception:
        return []
    pairs = {(k, v) for t in items for k, v in (t.get("labels") or {}).items()}
    keys = {k for k, _ in pairs}
    options = sorted(f"{k}={v}" for k, v in pairs) if "=" in last else sorted(keys)
    return [prefix + o for o in options if o.startswith(last.lstrip("!"))]


def complete_config_key(incomplete: str) -> list[str]:
    """Live-config keys (``KEY`` or ``KEY=`` for `config set`), no daemon needed."""
    import dataclasses

    from daemon.coordination import LiveConfig  # completion only: keeps `otm` light

    keys = [f.name for f in dataclasses.fields(LiveConfig)]
    return [k for k in keys if k.startswith(incomplete)]


TenantArg = Annotated[
    str, typer.Argument(metavar="NAME", help="Tenant id.", autocompletion=complete_tenant)
]
TenantsArg = Annotated[
    list[str],
    typer.Argument(metavar="NAME", help="Tenant ids.", autocompletion=complete_tenant),
]
OutputOpt = Annotated[
    Format, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
DocOutputOpt = Annotated[
    DocFormat, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
