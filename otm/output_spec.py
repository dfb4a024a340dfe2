"""`-o` for tenant lists: the fixed formats plus kubectl's `jsonpath=` and
`custom-columns=`, and `--show-labels` for the tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer

from otm.jsonpath import custom_column_rows, parse_custom_columns, render_jsonpath
from otm.output import (
    TENANT_HEADERS,
    Format,
    TablePrinter,
    format_labels,
    render_tenants,
    tenant_row,
    tenants_document,
)

FORMATS_HELP = "table|wide|json|yaml|name|jsonpath=TEMPLATE|custom-columns=SPEC"


@dataclass(frozen=True)
class OutputSpec:
    fmt: Format | None
    """A fixed format, or None for a template."""
    jsonpath: str | None = None
    columns: tuple[tuple[str, str], ...] = ()


def parse_output(value: str) -> OutputSpec:
    """``-o`` value → spec; typer.BadParameter (exit 2) when it is none of them."""
    kind, sep, template = value.partition("=")
    try:
        if sep and kind == "jsonpath":
            render_jsonpath(template, {})  # syntax errors now, before any request
            return OutputSpec(None, jsonpath=template)
        if sep and kind == "custom-columns":
            return OutputSpec(None, columns=tuple(parse_custom_columns(template)))
        return OutputSpec(Format(value.lower()))
    except ValueError as exc:
        if sep and kind in ("jsonpath", "custom-columns"):
            raise typer.BadParameter(str(exc)) from None
        raise typer.BadParameter(f"{value!r} is not one of {FORMATS_HELP}") from None


def _validate(value: str) -> str:
    parse_output(value)
    return value


ListOutputOpt = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help=f"Output format: {FORMATS_HELP}.",
        callback=_validate,
    ),
]
ShowLabelsOpt = Annotated[
    bool, typer.Option("--show-labels", help="Add a LABELS column to the table.")
]


def render(
    items: Sequence[Mapping[str, Any]],
    spec: OutputSpec,
    *,
    now: datetime,
    single: bool = False,
    headers: bool = True,
    show_labels: bool = False,
) -> str:
    if spec.jsonpath is not None:
        return render_jsonpath(spec.jsonpath, tenants_document(items, single=single))
    if spec.columns:
        table = TablePrinter([h for h, _ in spec.columns], show_headers=headers)
        return table.render(custom_column_rows(spec.columns, items)) if items else ""
    assert spec.fmt is not None
    if show_labels and spec.fmt == Format.table and items:
        table = TablePrinter([*TENANT_HEADERS, "LABELS"], show_headers=headers)
        rows = [
            [*tenant_row(t, wide=False, now=now), format_labels(t.get("labels"))] for t in items
        ]
        return table.render(rows)
    # wide already has LABELS; the other formats carry the labels in the object.
    return render_tenants(items, spec.fmt, now=now, single=single, headers=headers)
