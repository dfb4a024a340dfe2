"""A minimal evaluator for identity-based IAM policies: enough to test the ABAC scoping
in deploy/iam/ as behaviour ("may pod X read key Y?") rather than as text.

Covered (as documented in the IAM policy reference): Allow/Deny statements, Action and
Resource with `*`/`?` wildcards, `${aws:PrincipalTag/...}` variables in Resource and
condition values (an unresolvable variable makes the statement not apply), and the
condition operators StringEquals, StringLike, StringNotLike, ArnEquals, ArnLike (keys
ANDed, values ORed; a missing key fails positive operators and satisfies negated ones).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

Doc = dict[str, Any]
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class Unresolvable(Exception):
    pass


def _substitute(text: str, context: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in context:
            raise Unresolvable(key)
        # Substituted values are literal, even when the target is a wildcard pattern.
        return context[key].replace("*", "[*]").replace("?", "[?]")

    return _VARIABLE.sub(replace, text)


def _like(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(
    conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]
) -> bool:
    for operator, clauses in conditions.items():
        for key, raw_values in clauses.items():
            values = [_substitute(v, context) for v in _as_list(raw_values)]
            actual = context.get(key)
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual is not None and any(
                    actual == v.replace("[*]", "*").replace("[?]", "?") for v in values
                )
            elif operator in ("StringLike", "ArnLike"):
                ok = actual is not None and any(_like(actual, v) for v in values)
            elif operator == "StringNotLike":
                ok = actual is None or not any(_like(actual, v) for v in values)
            else:
                raise ValueError(f"operator {operator} is not modelled")
            if not ok:
                return False
    return True


def _statement_applies(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]
) -> bool:
    if not any(_like(action, a) for a in _as_list(statement["Action"])):
        return False
    try:
        patterns = [_substitute(r, context) for r in _as_list(statement["Resource"])]
        if not any(_like(resource, p) for p in patterns):
            return False
        return _condition_holds(statement.get("Condition") or {}, context)
    except Unresolvable:
        return False


def is_allowed(policy: Doc, action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Explicit deny wins; otherwise some Allow must apply; otherwise implicit deny."""
    applying = [s for s in policy["Statement"] if _statement_applies(s, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in applying):
        return False
    return any(s["Effect"] == "Allow" for s in applying)
