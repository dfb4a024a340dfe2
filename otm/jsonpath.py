"""`-o jsonpath=TEMPLATE` and `-o custom-columns=SPEC`, the kubectl subset people use.

JSONPath templates: text with ``{...}`` expressions — ``{.tenant_id}``,
``{.items[*].tenant_id}``, ``{.items[0].labels.tier}``, ``{.labels['app.kubernetes.io/x']}``,
``{range .items[*]}{.tenant_id}{"\\n"}{end}`` and string literals ``{"\\t"}``. Several
results of one expression are joined by spaces, as kubectl does. Custom columns:
``NAME:.tenant_id,TIER:.labels.tier`` (one row per tenant; a missing value is <none>).
Errors are ValueError with the reason (the CLI turns them into usage errors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

_TOKEN = re.compile(r"\{((?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\*|-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def _steps(path: str) -> list[str | int | None]:
    """``.a.b[0][*]`` → ["a", "b", 0, None] (None: every element)."""
    path = path.strip()
    if path in ("", "."):
        return []
    if not path.startswith((".", "[")):
        path = "." + path
    steps: list[str | int | None] = []
    pos = 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise ValueError(f"invalid JSONPath {path!r} at {path[pos:]!r}")
        name, index, quoted, dquoted = match.groups()
        if name is not None:
            steps.append(name)
        elif index == "*":
            steps.append(None)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(quoted if quoted is not None else dquoted)
        pos = match.end()
    return steps


def select(doc: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches in ``doc`` (none if a step is missing)."""
    values = [doc]
    for step in _steps(path):
        found: list[Any] = []
        for value in values:
            if step is None:
                if isinstance(value, list):
                    found.extend(value)
                elif isinstance(value, dict):
                    found.extend(value.values())
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    found.append(value[step])
            elif isinstance(value, dict) and step in value:
                found.append(value[step])
        values = found
    return values


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


def _tokens(template: str) -> Iterator[tuple[str, str]]:
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            yield "text", template[pos : match.start()]
        yield "expr", match.group(1).strip()
        pos = match.end()
    if pos < len(template):
        yield "text", template[pos:]


def render_jsonpath(template: str, doc: Any) -> str:
    if "{" not in template:
        raise ValueError(f"invalid JSONPath template {template!r} (expected e.g. {{.tenant_id}})")
    tokens = list(_tokens(template))
    out, rest = _render(tokens, doc)
    if rest:
        raise ValueError(f"invalid JSONPath template {template!r}: {{end}} without {{range}}")
    return out


def _render(tokens: list[tuple[str, str]], doc: Any) -> tuple[str, list[tuple[str, str]]]:
    """Render until an unmatched {end}; returns the text and the tokens after it."""
    parts: list[str] = []
    while tokens:
        kind, value = tokens.pop(0)
        if kind == "text":
            parts.append(value)
        elif value == "end":
            return "".join(parts), [("end", ""), *tokens]
        elif value.startswith("range "):
            body, tokens = _range_body(tokens)
            for item in select(doc, value[len("range ") :]):
                text, _ = _render(list(body), item)
                parts.append(text)
        elif value.startswith('"'):
            try:
                parts.append(json.loads(value, strict=False))
            except ValueError:
                raise ValueError(f"invalid string literal {value}") from None
        else:
            parts.append(" ".join(_text(v) for v in select(doc, value)))
    return "".join(parts), []


def _range_body(
    tokens: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    depth = 0
    for i, (kind, value) in enumerate(tokens):
        if kind == "expr" and value.startswith("range "):
            depth += 1
        elif kind == "expr" and value == "end":
            if depth == 0:
                return tokens[:i], tokens[i + 1 :]
            depth -= 1
    raise ValueError("{range} without {end}")


def parse_custom_columns(spec: str) -> list[tuple[str, str]]:
    columns: list[tuple[str, str]] = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header.strip() or not path.strip():
            raise ValueError(
                f"invalid custom-columns spec {spec!r} (expected HEADER:.path,HEADER:.path)"
            )
        _steps(path.strip().strip("{}"))  # validated now, not on the first row
        columns.append((header.strip(), path.strip().strip("{}")))
    return columns


def custom_column_rows(columns: Sequence[tuple[str, str]], items: Sequence[Any]) -> list[list[str]]:
    rows = []
    for item in items:
        row = []
        for _, path in columns:
            values = select(item, path)
            row.append(",".join(_text(v) for v in values) if values else "<none>")
        rows.append(row)
    return rows
