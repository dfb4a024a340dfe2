"""The dashboard's key bindings, read from keys.toml: one table of every key by screen, so
the keys can be read (and compared with k9s's) in one place rather than across the screens."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

from textual.binding import Binding, BindingType


@cache
def _tables() -> dict[str, list[dict[str, Any]]]:
    text = resources.files(__package__).joinpath("keys.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def keymap(scope: str) -> list[BindingType]:
    """The bindings of one screen (``scope``), ids prefixed with it (``tenants.wake``)."""
    return [
        Binding(
            row["key"],
            row["action"],
            row["label"],
            id=f"{scope}.{row['id']}",
            show=row.get("show", True),
            priority=row.get("priority", False),
            key_display=row.get("key_display"),
            tooltip=row["tooltip"],
        )
        for row in _tables()[scope]
    ]
