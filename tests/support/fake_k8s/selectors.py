"""Label selectors (equality- and set-based) and field selectors, as the apiserver parses them.

Parse errors raise `ApiError` 400 BadRequest, like the real apiserver does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .resources import ResourceType

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY_RE = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
LABEL_VALUE_RE = re.compile(rf"^({_NAME})?$")

_SET_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EXISTS_RE = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=<>(),]+)$")
_CMP_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)\s*(?P<op>==|!=|=|>|<)\s*(?P<value>[^\s!=<>(),]*)$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        # ">" and "<" compare integers; a non-integer label never matches.
        try:
            number, bound = int(labels[self.key]), int(self.values[0])
        except (KeyError, ValueError):
            return False
        return number > bound if self.op == ">" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        return self.matches(obj.get("metadata", {}).get("labels"))


# A comma not followed by a ")" before the next "(" is outside a set: it separates terms.
# (The daemon's own parser in daemon/label_selector.py counts depth; the fake tokenises
# independently, so a bug in one is not mirrored by the other.)
_TERM_SEPARATOR = re.compile(r",(?![^(]*\))")


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` → [`a in (x,y)`, `b`]."""
    if selector.count("(") != selector.count(")"):
        raise bad_request(f"unable to parse requirement: unbalanced parentheses in {selector!r}")
    return [term.strip() for term in _TERM_SEPARATOR.split(selector)]


def _check_key(key: str) -> None:
    if not LABEL_KEY_RE.match(key) or len(key.split("/")[0]) > 253:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")


def _check_value(value: str) -> None:
    if not LABEL_VALUE_RE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r}")


def parse_label_selector(selector: str | None) -> LabelSelector:
    if not selector or not selector.strip():
        return LabelSelector()
    requirements = []
    for term in _split_terms(selector):
        if m := _SET_RE.match(term):
            values = tuple(v.strip() for v in m["values"].split(","))
            for value in values:
                _check_value(value)
            requirement = Requirement(m["key"], m["op"], values)
        elif m := _CMP_RE.match(term):
            op = "=" if m["op"] == "==" else m["op"]
            _check_value(m["value"])
            if op in (">", "<") and not m["value"].lstrip("-").isdigit():
                raise bad_request(f"unable to parse requirement: {term!r} needs an integer")
            requirement = Requirement(m["key"], op, (m["value"],))
        elif m := _EXISTS_RE.match(term):
            requirement = Requirement(m["key"], "!" if m["neg"] else "exists")
        else:
            raise bad_request(f"unable to parse requirement: {term!r}")
        _check_key(requirement.key)
        requirements.append(requirement)
    return LabelSelector(tuple(requirements))


# Field selectors ----------------------------------------------------------------------------

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_FIELDS_BY_KIND: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


def supported_fields(rt: ResourceType) -> tuple[str, ...]:
    return _COMMON_FIELDS + _FIELDS_BY_KIND.get((rt.group, rt.plural), ())


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares with; a missing field reads as ""."""
    if path == "source":  # core/v1 Event: `source` selects on source.component
        path = "source.component"
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, f) == v) == equal for f, equal, v in self.terms)


def parse_field_selector(selector: str | None, rt: ResourceType) -> FieldSelector:
    if not selector or not selector.strip():
        return FieldSelector()
    allowed = supported_fields(rt)
    terms = []
    for term in selector.split(","):
        m = re.match(r"^\s*([^\s!=]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if m is None:
            raise bad_request(f'invalid selector: "{selector}"; can\'t understand "{term}"')
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in allowed:
            raise bad_request(f"field label not supported: {field}")
        terms.append((field, op != "!=", value))
    return FieldSelector(tuple(terms))


Matcher = Callable[[Mapping[str, Any]], bool]


def object_matcher(
    rt: ResourceType, label_selector: str | None, field_selector: str | None
) -> Matcher:
    """One predicate for both selectors; raises ApiError 400 for a malformed selector."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, rt)

    def matches(obj: Mapping[str, Any]) -> bool:
        return labels.matches_object(obj) and fields.matches_object(obj)

    return matches
