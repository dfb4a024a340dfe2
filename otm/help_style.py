"""kubectl-like help text: ``-l, --selector SELECTOR``, ``NAME...``, flags without a type.

Typer's help shows every parameter's Python type (``<bool>``, ``<str>``,
``<list[str]>``) and wraps required arguments in braces (``{NAME}...``); kubectl
users read neither. This adjusts the two Typer parameter classes once, at CLI import;
tests/cli/test_kubectl_habits.py checks the rendered help.
"""

from __future__ import annotations

from typing import Any

from typer import core as typer_core


def _option_type(self: Any, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None  # a flag takes no value: nothing to show (kubectl shows none)
    if self.metavar is not None:
        return str(self.metavar)
    label = str(self.display_type(ctx)).strip("<>")
    if "|" in label:
        return label  # choices: table|wide|json
    return str(self.name or "value").upper()  # a bare type (str, int): name the value


def _argument_type(self: Any, ctx: Any) -> str | None:
    return None  # the name (NAME, KEY=VALUE...) says it


def _argument_usage(self: Any) -> str:
    name = str(self.display_name_raw)
    if self.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name if self.required else f"[{name}]"


def apply() -> None:
    typer_core.TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]
    typer_core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]
    typer_core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
