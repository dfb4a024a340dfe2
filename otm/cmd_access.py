"""`otm token create|list|revoke` (named admin tokens) and `otm audit` (who changed what)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from otm.cmd_common import DocOutputOpt, make_client, out, tenant_id
from otm.output import AUDIT_HEADERS, DocFormat, audit_row, render_table, to_json, to_yaml

MAX_PAGE = 1000
"""The daemon's largest audit page (daemon/admin/access_api.py)."""
TOKEN_HEADERS = ["NAME", "CREATED", "CREATED BY", "REVOKED"]

token_app = typer.Typer(
    name="token",
    help="Named admin tokens: each one revocable, each recorded as the actor in the audit log.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Token name (e.g. ci, alice).")]


def _document(body: Any, output: DocFormat) -> str:
    return to_json(body) if output == DocFormat.json else to_yaml(body)


@token_app.command("create")
def create_token(ctx: typer.Context, name: NameArg, output: DocOutputOpt = DocFormat.table) -> None:
    """Create a token and print its secret: shown this once, only its hash is kept."""
    body = make_client(ctx).request("POST", "/v1/tokens", body={"name": name})
    if output == DocFormat.table:
        out(body["token"])
        typer.echo(
            f"token/{body['name']} created: store the secret now, it cannot be shown again",
            err=True,
        )
    else:
        out(_document(body, output))


@token_app.command("list")
def list_tokens(ctx: typer.Context, output: DocOutputOpt = DocFormat.table) -> None:
    """The configured token (`admin`) and the named ones; never their secrets."""
    body = make_client(ctx).get("/v1/tokens")
    if output != DocFormat.table:
        out(_document(body, output))
        return
    rows = [
        [t["name"], t.get("created_at") or "-", t["created_by"], "yes" if t["revoked"] else "no"]
        for t in body["items"]
    ]
    out(render_table(TOKEN_HEADERS, rows))


@token_app.command("revoke")
def revoke_token(ctx: typer.Context, name: NameArg) -> None:
    """Revoke a token: every daemon replica refuses it at once. Revoking `admin` refuses the
    configured token until it is replaced (new admin_token, or a new DATA_DIR/admin-token)."""
    make_client(ctx).request("DELETE", f"/v1/tokens/{name}")
    out(f"token/{name} revoked")


def audit(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="ID", help="Only this tenant's entries.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="DURATION", help="Only entries newer than this (30m, 24h, 7d)."
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", metavar="TOKEN", help="Only this token's entries.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", metavar="ACTION", help="Only this action (e.g. tenant.delete)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many (the newest) entries.")
    ] = 100,
    output: DocOutputOpt = DocFormat.table,
) -> None:
    """Admin mutations, oldest first: time (UTC), actor, source, tenant, action, outcome and
    the fields changed (secrets shown as ***). A deleted tenant's trail stays."""
    query: dict[str, Any] = {
        "tenant": tenant_id(tenant) if tenant is not None else None,
        "since": since,
        "actor": actor,
        "action": action,
    }
    client = make_client(ctx)
    pages: list[list[dict[str, Any]]] = []
    remaining, cursor = limit, None
    while remaining > 0:
        size = min(remaining, MAX_PAGE)
        body = client.get("/v1/audit", **query, limit=size, before=cursor)
        pages.append(body["items"])
        remaining -= len(body["items"])
        cursor = body.get("next")
        if cursor is None:
            break
    items = [entry for page in reversed(pages) for entry in page]  # pages go back in time
    if output == DocFormat.table:
        out(render_table(AUDIT_HEADERS, [audit_row(e) for e in items]))
    else:
        out(_document({"items": items}, output))


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.command("audit")(audit)
