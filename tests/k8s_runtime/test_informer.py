"""The shared pod informer: list+watch, bookmarks, re-list on 410, subscriptions, waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from daemon.kube.client import open_api_client
from daemon.kube.informer import ADDED, DELETED, PodInformer
from daemon.kube.manifests import OPENCLAW_SELECTOR
from tests.k8s_runtime.support import NS
from tests.support.fake_k8s import PODS
from tests.support.fake_k8s.fixture import FakeK8s


def _pod(name: str, labels: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "openclaw"} if labels is None else labels,
        },
        # Naming another scheduler keeps the fake kubelet's hands off these pods.
        "spec": {"schedulerName": "none", "containers": [{"name": "c", "image": "x"}]},
    }


@pytest_asyncio.fixture
async def informer(k8s: FakeK8s) -> AsyncIterator[PodInformer]:
    api = await open_api_client(str(k8s.kubeconfig_path))
    informer = PodInformer(api, NS, label_selector=OPENCLAW_SELECTOR, retry_backoff_s=0.05)
    try:
        yield informer
    finally:
        await informer.stop()
        await api.close()


async def test_lists_then_watches_with_selector(k8s: FakeK8s, informer: PodInformer) -> None:
    store = k8s.server.store
    store.create(PODS, NS, _pod("before"))
    store.create(PODS, NS, _pod("unrelated", labels={"app": "other"}))
    await informer.start()
    assert set(informer.cache) == {"before"}
    with informer.subscribe() as events:
        store.create(PODS, NS, _pod("after"))
        kind, pod = await asyncio.wait_for(events.__anext__(), 5)
    assert (kind, pod["metadata"]["name"]) == (ADDED, "after")
    assert set(informer.cache) == {"before", "after"}
    assert informer.relists == 1


async def test_bookmarks_advance_the_resource_version(k8s: FakeK8s, informer: PodInformer) -> None:
    await informer.start()
    # A change the selector hides still moves the server's RV; bookmarks carry it.
    created = k8s.server.store.create(PODS, NS, _pod("hidden", labels={"app": "other"}))
    target = int(created["metadata"]["resourceVersion"])
    await informer.wait_for(
        lambda _: True if int(informer.resource_version or 0) >= target else None, timeout=5
    )
    assert "hidden" not in informer.cache


async def test_relists_after_410_and_reports_what_it_missed(
    k8s: FakeK8s, informer: PodInformer
) -> None:
    store = k8s.server.store
    store.create(PODS, NS, _pod("stays"))
    store.create(PODS, NS, _pod("goes"))
    await informer.start()
    with informer.subscribe() as events:
        # No await in between: the informer cannot see these changes live. Its reconnect
        # then asks for an RV the server has compacted away → 410 → re-list.
        k8s.server.drop_watches()
        store.delete(PODS, NS, "goes", grace_period_seconds=0)
        store.create(PODS, NS, _pod("new"))
        k8s.server.compact()

        seen: dict[str, str] = {}
        while set(seen) != {"goes", "new"}:
            kind, pod = await asyncio.wait_for(events.__anext__(), 5)
            seen[pod["metadata"]["name"]] = kind
    assert seen == {"goes": DELETED, "new": ADDED}
    assert set(informer.cache) == {"stays", "new"}
    assert informer.relists == 2


async def test_wait_for_resolves_on_events_and_times_out(
    k8s: FakeK8s, informer: PodInformer
) -> None:
    await informer.start()
    waiting = asyncio.create_task(informer.wait_for(lambda cache: cache.get("late"), timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    k8s.server.store.create(PODS, NS, _pod("late"))
    pod = await waiting
    assert pod["metadata"]["name"] == "late"
    with pytest.raises(TimeoutError):
        await informer.wait_for(lambda cache: cache.get("never"), timeout=0.2)


async def test_survives_api_errors_on_reconnect(k8s: FakeK8s, informer: PodInformer) -> None:
    await informer.start()
    k8s.server.inject_fault(500, count=2, path_contains="/pods")
    k8s.server.drop_watches()
    k8s.server.store.create(PODS, NS, _pod("after-errors"))
    await informer.wait_for(lambda cache: cache.get("after-errors"), timeout=5)


@asynccontextmanager
async def _paged_informer(
    k8s: FakeK8s, *, pods: int, page_size: int, between_pages: Callable[[], object]
) -> AsyncIterator[PodInformer]:
    """An informer over pods p0..p<pods-1> that lists ``page_size`` at a time and calls
    ``between_pages`` once, right after its first page (the request log starts empty)."""
    store = k8s.server.store
    for i in range(pods):
        store.create(PODS, NS, _pod(f"p{i}"))
    api = await open_api_client(str(k8s.kubeconfig_path))
    informer = PodInformer(api, NS, page_size=page_size)
    fetch_page = informer.lister.fetch_page
    called = False

    async def first_page_then_act(token: str | None) -> bytes:
        nonlocal called
        body = await fetch_page(token)
        if token is None and not called:
            called = True
            between_pages()
        return body

    informer.lister.fetch_page = first_page_then_act  # type: ignore[method-assign]
    k8s.server.clear_requests()
    try:
        yield informer
    finally:
        await informer.stop()
        await api.close()


def _list_queries(k8s: FakeK8s) -> list[dict[str, str]]:
    return [r.query for r in k8s.server.requests if r.method == "GET" and "watch" not in r.query]


async def test_lists_in_pages_as_one_snapshot(k8s: FakeK8s) -> None:
    """The list comes a page at a time (limit/continue) and, like the apiserver's pages,
    shows one snapshot: a pod created between pages is not in it; the watch from the
    list's RV brings it."""
    store = k8s.server.store
    async with _paged_informer(
        k8s, pods=5, page_size=2, between_pages=lambda: store.create(PODS, NS, _pod("p9"))
    ) as informer:
        with informer.subscribe() as events:
            await informer.start()
            cache_after_list = set(informer.cache)
            kind, pod = await asyncio.wait_for(events.__anext__(), 5)
            while pod["metadata"]["name"] != "p9":
                kind, pod = await asyncio.wait_for(events.__anext__(), 5)
    assert cache_after_list == {f"p{i}" for i in range(5)}
    assert kind == ADDED
    lists = _list_queries(k8s)
    assert [q.get("limit") for q in lists] == ["2", "2", "2"]
    assert ["continue" in q for q in lists] == [False, True, True]


async def test_restarts_a_list_whose_continue_token_expired(k8s: FakeK8s) -> None:
    """History compacted between two pages: the apiserver refuses the continue token (410
    Expired); the informer lists again from the start and ends with every pod."""

    def write_then_compact() -> None:
        k8s.server.store.create(PODS, NS, _pod("p5"))
        k8s.server.compact()

    async with _paged_informer(
        k8s, pods=4, page_size=3, between_pages=write_then_compact
    ) as informer:
        await informer.start()
        assert set(informer.cache) == {"p0", "p1", "p2", "p3", "p5"}
        assert informer.relists == 1
    assert ["continue" in q for q in _list_queries(k8s)] == [False, True, False, True]


async def test_caches_views_not_whole_pods(k8s: FakeK8s, informer: PodInformer) -> None:
    """Listed and watched pods alike are kept as views: what the consumers read, no spec
    beyond the node."""
    store = k8s.server.store
    store.create(PODS, NS, _pod("listed"))
    await informer.start()
    store.create(PODS, NS, _pod("watched"))
    await informer.wait_for(lambda cache: cache.get("watched"), timeout=5)
    for name in ("listed", "watched"):
        pod = informer.cache[name]
        assert pod["kind"] == "Pod" and pod["metadata"]["name"] == name
        assert "containers" not in pod["spec"]


async def test_pods_of_follows_labels_deletions_and_relists(
    k8s: FakeK8s, informer: PodInformer
) -> None:
    """The per-tenant index answers like a scan of the cache: a pod relabelled for another
    tenant (a claimed warm pod) moves, a deleted one goes, a re-list rebuilds it."""
    store = k8s.server.store
    base = {"app.kubernetes.io/name": "openclaw"}
    store.create(PODS, NS, _pod("a1", labels={**base, "otm/tenant": "a"}))
    store.create(PODS, NS, _pod("warm", labels={**base, "otm/warm": "true"}))
    await informer.start()
    assert [p["metadata"]["name"] for p in informer.pods_of("a")] == ["a1"]
    store.patch(
        PODS,
        NS,
        "warm",
        "application/merge-patch+json",
        {"metadata": {"labels": {"otm/warm": None, "otm/tenant": "b"}}},
    )
    await informer.wait_for(lambda _: informer.pods_of("b") or None, timeout=5)
    store.patch(
        PODS,
        NS,
        "warm",
        "application/merge-patch+json",
        {"metadata": {"labels": {"otm/tenant": "a"}}},
    )
    await informer.wait_for(lambda _: len(informer.pods_of("a")) == 2 or None, timeout=5)
    assert informer.pods_of("b") == []
    store.delete(PODS, NS, "a1", grace_period_seconds=0)
    await informer.wait_for(lambda cache: "a1" not in cache or None, timeout=5)
    assert [p["metadata"]["name"] for p in informer.pods_of("a")] == ["warm"]
    k8s.server.drop_watches()
    store.delete(PODS, NS, "warm", grace_period_seconds=0)
    k8s.server.compact()
    await informer.wait_for(lambda _: informer.relists == 2 or None, timeout=5)
    assert informer.pods_of("a") == []
