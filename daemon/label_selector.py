"""Kubernetes label selectors, equality- and set-based, for `otm tenant list -l`.

``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``, joined
by commas (AND). Anything else is an error naming the selector — never a silently
empty result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from daemon.model import _LABEL_KEY_RE

_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str
    """``=``, ``!=``, ``in``, ``notin``, ``exists`` or ``!``."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


def _split_terms(selector: str) -> list[str]:
    """Commas separate terms, except inside the parentheses of a set."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    terms.append("".join(current).strip())
    return [t for t in terms if t]


def parse_label_selector(selector: str) -> list[Requirement]:
    """The requirements of ``selector`` (ValueError with the reason if malformed)."""
    requirements: list[Requirement] = []
    for term in _split_terms(selector):
        requirements.append(_parse_term(selector, term))
    return requirements


def _parse_term(selector: str, term: str) -> Requirement:
    def bad(why: str) -> ValueError:
        return ValueError(f"invalid label selector {selector!r}: {why}")

    if match := _SET_RE.match(term):
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        requirement = Requirement(match["key"], match["op"], values)
    elif "!=" in term:
        key, value = term.split("!=", 1)
        requirement = Requirement(key.strip(), "!=", frozenset({value.strip()}))
    elif "=" in term:
        key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
        requirement = Requirement(key.strip(), "=", frozenset({value.strip()}))
    elif term.startswith("!"):
        requirement = Requirement(term[1:].strip(), "!")
    else:
        requirement = Requirement(term, "exists")
    if not _LABEL_KEY_RE.fullmatch(requirement.key):
        raise bad(f"{term!r} (expected k=v, k!=v, k, !k, k in (a,b) or k notin (a,b))")
    for value in requirement.values:
        if not _VALUE_RE.fullmatch(value):
            raise bad(f"invalid value {value!r} in {term!r}")
    if requirement.op in ("in", "notin") and not requirement.values:
        raise bad(f"{term!r} needs at least one value")
    return requirement


def matches_labels(labels: Mapping[str, str], requirements: list[Requirement]) -> bool:
    return all(r.matches(labels) for r in requirements)
