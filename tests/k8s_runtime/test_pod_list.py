"""The informer's paginated list (daemon/kube/pod_list.py), its pure parts: a page decoded
into views, and how often an expired continue token restarts the list. (Paging against
the fake apiserver, snapshot and 410 included: test_informer.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from daemon.kube.client import ApiException
from daemon.kube.pod_list import LIST_ATTEMPTS, PodLister, _ContinueExpired, parse_page


def _body(names: list[str], token: str | None) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": "7"}
    if token:
        meta["continue"] = token
    items = [{"metadata": {"name": n, "resourceVersion": "5"}, "spec": {}} for n in names]
    body = {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}
    return json.dumps(body).encode()


def test_parse_page_returns_views_and_the_list_metadata() -> None:
    page = parse_page(_body(["a", "b"], "tok"))
    assert [v["metadata"]["name"] for v in page.views] == ["a", "b"]
    assert all(v["kind"] == "Pod" for v in page.views)
    assert (page.continue_token, page.resource_version) == ("tok", "7")
    assert parse_page(_body([], None)) == ([], None, "7")


async def test_an_always_expiring_continue_token_gives_up_after_a_few_lists() -> None:
    """The apiserver compacts faster than the list pages: start over LIST_ATTEMPTS times,
    then hand the 410 to the informer (which backs off before listing again)."""
    asked: list[str | None] = []
    lister = PodLister(core=None, namespace="ns", label_selector="x", page_size=1)

    async def fetch_page(token: str | None) -> bytes:
        asked.append(token)
        if token is not None:
            raise _ContinueExpired(ApiException(status=410, reason="Expired"))
        return _body(["a"], "t1")

    lister.fetch_page = fetch_page  # type: ignore[method-assign]
    with pytest.raises(ApiException) as failure:
        await lister.list_views()
    assert failure.value.status == 410
    assert asked == [None, "t1"] * LIST_ATTEMPTS
