"""Unit tests of the fake's pure logic: URL parsing, selectors, patches, watch transitions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fake_k8s import CONFIGMAPS, LEASES, NAMESPACES, PODS, ApiError, Change
from tests.support.fake_k8s.patching import json_patch, merge_patch, strategic_merge_patch
from tests.support.fake_k8s.resources import parse_path
from tests.support.fake_k8s.selectors import object_matcher, parse_label_selector
from tests.support.fake_k8s.watching import visible_event

JSON = dict[str, Any]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces", (NAMESPACES, None, None, None)),
        ("/api/v1/namespaces/ns", (NAMESPACES, None, "ns", None)),
        ("/api/v1/namespaces/ns/status", (NAMESPACES, None, "ns", "status")),
        ("/api/v1/namespaces/ns/pods", (PODS, "ns", None, None)),
        ("/api/v1/namespaces/ns/pods/p/log", (PODS, "ns", "p", "log")),
        ("/api/v1/pods", (PODS, None, None, None)),
        ("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", (LEASES, "ns", "l", None)),
    ],
)
def test_parse_path(path: str, expected: tuple[Any, ...]) -> None:
    parsed = parse_path(path)
    assert parsed is not None
    assert (parsed.resource, parsed.namespace, parsed.name, parsed.subresource) == expected


@pytest.mark.parametrize(
    "path", ["/api/v2/pods", "/apis/apps/v1/namespaces/ns/widgets", "/healthz", "/api/v1/a/b/c/d"]
)
def test_parse_path_rejects_unknown_resources(path: str) -> None:
    assert parse_path(path) is None


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("app=a", {"app": "a"}, True),
        ("app=a", {}, False),
        ("app!=a", {}, True),
        ("app in (a, b),!tier", {"app": "b"}, True),
        ("app in (a, b),!tier", {"app": "b", "tier": "x"}, False),
        ("app notin (a,b)", {}, True),
        ("otm/tenant", {"otm/tenant": "t1"}, True),
        ("size>3", {"size": "4"}, True),
        ("size<3", {"size": "x"}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selector_matching(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is matches


@pytest.mark.parametrize("selector", ["app in (a", "app=a b", "a=b=c", "=x", "app in a", "-bad"])
def test_malformed_label_selectors_are_bad_requests(selector: str) -> None:
    with pytest.raises(ApiError) as failure:
        parse_label_selector(selector)
    assert failure.value.code == 400


def test_field_selector_on_nested_pod_fields() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Running"}}
    assert object_matcher(PODS, None, "status.phase=Running,metadata.name=p")(pod)
    assert object_matcher(PODS, None, "spec.nodeName=")(pod)
    assert not object_matcher(PODS, None, "status.phase!=Running")(pod)
    with pytest.raises(ApiError):
        object_matcher(CONFIGMAPS, None, "status.phase=Running")


def test_merge_patch_deletes_with_null_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(target, {"a": {"b": None}, "l": [3]}) == {"a": {"c": 2}, "l": [3]}


def test_strategic_merge_merges_lists_by_their_merge_key() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
    patch = {"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}}
    merged = strategic_merge_patch(pod, patch)
    assert [(c["name"], c["image"]) for c in merged["spec"]["containers"]] == [
        ("a", "x"),
        ("b", "z"),
        ("c", "w"),
    ]
    dropped = strategic_merge_patch(merged, {"spec": {"containers": [
        {"name": "a", "$patch": "delete"}]}})  # fmt: skip
    assert [c["name"] for c in dropped["spec"]["containers"]] == ["b", "c"]


def test_strategic_merge_directives() -> None:
    meta = {"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$retainKeys": ["x"]}}
    assert strategic_merge_patch(meta, patch)["metadata"]["finalizers"] == ["b"]
    replaced = strategic_merge_patch(
        meta, {"metadata": {"labels": {"$patch": "replace", "y": "2"}}}
    )
    assert replaced["metadata"]["labels"] == {"y": "2"}


def test_json_patch_move_copy_and_append() -> None:
    doc = {"a": [1], "b": {"c": "d"}}
    result = json_patch(doc, [
        {"op": "add", "path": "/a/-", "value": 2},
        {"op": "copy", "from": "/b/c", "path": "/e"},
        {"op": "move", "from": "/b", "path": "/f"},
        {"op": "remove", "path": "/a/0"},
    ])  # fmt: skip
    assert result == {"a": [2], "e": "d", "f": {"c": "d"}}
    assert doc == {"a": [1], "b": {"c": "d"}}  # the input is not modified


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/a/5", "value": 1}],
        [{"op": "test", "path": "/a", "value": "other"}],
        [{"op": "frobnicate", "path": "/a"}],
        {"op": "add"},
    ],
)
def test_json_patch_errors_are_invalid(operations: Any) -> None:
    with pytest.raises(ApiError) as failure:
        json_patch({"a": [0]}, operations)
    assert failure.value.code == 422


def _cm(labels: dict[str, str], namespace: str = "n") -> JSON:
    return {"metadata": {"name": "x", "namespace": namespace, "labels": labels}}


@pytest.mark.parametrize(
    ("kind", "old", "new", "expected"),
    [
        ("MODIFIED", {"app": "a"}, {"app": "a"}, "MODIFIED"),
        ("MODIFIED", {"app": "b"}, {"app": "a"}, "ADDED"),
        ("MODIFIED", {"app": "a"}, {"app": "b"}, "DELETED"),
        ("MODIFIED", {"app": "b"}, {"app": "c"}, None),
        ("DELETED", {"app": "a"}, {"app": "a"}, "DELETED"),
        ("ADDED", None, {"app": "b"}, None),
    ],
)
def test_watch_selector_transitions(
    kind: str, old: dict[str, str] | None, new: dict[str, str], expected: str | None
) -> None:
    change = Change(7, kind, CONFIGMAPS, _cm(new), None if old is None else _cm(old))
    event = visible_event(change, "n", object_matcher(CONFIGMAPS, "app=a", None))
    assert (event[0] if event else None) == expected


def test_watch_filters_by_namespace() -> None:
    change = Change(1, "ADDED", CONFIGMAPS, _cm({}, namespace="other"), None)
    assert visible_event(change, "n", object_matcher(CONFIGMAPS, None, None)) is None
    assert visible_event(change, None, object_matcher(CONFIGMAPS, None, None)) is not None
