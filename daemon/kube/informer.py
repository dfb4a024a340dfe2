"""A shared pod informer: one List+Watch over every tenant and warm pod in the namespace.

* List (paginated, each pod cut down to the view its consumers read: pod_list.py,
  pod_view.py), then Watch from the list's resourceVersion with bookmarks (so a quiet
  watch still advances its RV and a reconnect replays nothing twice).
* 410 Gone/Expired (history compacted) → re-list; objects that vanished meanwhile come out
  as synthetic DELETED events, changed ones as MODIFIED, so subscribers never miss an end.
* Connection errors → reconnect from the last RV after a short backoff.

Consumers: the Kubernetes runtime (readiness futures through ``wait_for``, get/list from
``cache``), the warm pool (counts), the reconciler (``subscribe``). Nobody polls the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import RESTResponse

from daemon.kube.client import JSON, ApiException
from daemon.kube.manifests import OPENCLAW_SELECTOR, pod_tenant
from daemon.kube.pod_list import LIST_PAGE_SIZE, PodLister
from daemon.kube.pod_view import pod_view

log = logging.getLogger(__name__)

T = TypeVar("T")

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

PodEvent = tuple[str, JSON]


class _Expired(Exception):
    """The watch's resourceVersion is older than the server's history."""


@dataclass(eq=False)
class _Waiter(Generic[T]):
    predicate: Callable[[Mapping[str, JSON]], T | None]
    future: asyncio.Future[T] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Subscription:
    """Events from the moment of subscribing; iterate it, close it (or use ``with``)."""

    def __init__(self, informer: PodInformer) -> None:
        self._informer = informer
        self._queue: asyncio.Queue[PodEvent | None] = asyncio.Queue()
        informer._subscribers.add(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> PodEvent:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self._informer._subscribers.discard(self._queue)
        self._queue.put_nowait(None)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PodInformer:
    def __init__(
        self,
        api: Any,
        namespace: str,
        *,
        label_selector: str = OPENCLAW_SELECTOR,
        watch_timeout_s: int = 300,
        retry_backoff_s: float = 1.0,
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        # Typed Any: responses are raw (_preload_content=False), not the declared models.
        self._core: Any = client.CoreV1Api(api)
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout_s = watch_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.lister = PodLister(self._core, namespace, label_selector, page_size)
        self.cache: dict[str, JSON] = {}
        """Pods by name (views: pod_view.py), as the last event showed them. Read-only for
        consumers."""
        self._by_tenant: dict[str, dict[str, JSON]] = {}
        """The cache's pods by tenant label: a lookup per tenant is not a scan of every pod
        (at 10,000 pods, readiness predicates run on every event)."""
        self.resource_version: str | None = None
        self.synced = asyncio.Event()
        self.relists = 0
        """How many times the informer listed (1 after start; more after 410s)."""
        self._subscribers: set[asyncio.Queue[PodEvent | None]] = set()
        self._waiters: list[_Waiter[Any]] = []
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """Start watching; returns once the first list is in the cache."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"pod-informer-{self.namespace}")
        synced = asyncio.create_task(self.synced.wait())
        try:
            done, _ = await asyncio.wait(
                {synced, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            synced.cancel()
        if self._task in done:
            self._task.result()  # raises what ended it
            raise RuntimeError("pod informer ended before its first list")
        if not self.synced.is_set():
            await self.stop()
            raise TimeoutError("pod informer: first list did not complete")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(RuntimeError("pod informer stopped"))
        self._waiters.clear()

    # -- consumers ----------------------------------------------------------------------------

    def get(self, name: str) -> JSON | None:
        return self.cache.get(name)

    def pods(self) -> list[JSON]:
        return list(self.cache.values())

    def pods_of(self, tenant_id: str) -> list[JSON]:
        """The cached pods labelled for ``tenant_id``."""
        return list(self._by_tenant.get(tenant_id, {}).values())

    def _index(self, name: str, before: JSON | None, after: JSON | None) -> None:
        old_tenant = pod_tenant(before) if before is not None else None
        new_tenant = pod_tenant(after) if after is not None else None
        if old_tenant is not None and old_tenant != new_tenant:
            bucket = self._by_tenant.get(old_tenant, {})
            bucket.pop(name, None)
            if not bucket:
                self._by_tenant.pop(old_tenant, None)
        if new_tenant is not None and after is not None:
            self._by_tenant.setdefault(new_tenant, {})[name] = after

    def subscribe(self) -> Subscription:
        return Subscription(self)

    async def wait_for(
        self, predicate: Callable[[Mapping[str, JSON]], T | None], timeout: float | None = None
    ) -> T:
        """The predicate's first non-None result, evaluated on the cache now and after every
        change. The predicate may raise to end the wait with that error."""
        result = predicate(self.cache)
        if result is not None:
            return result
        waiter: _Waiter[T] = _Waiter(predicate)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.cancel()

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
            except _Expired:
                log.info("pod watch expired at rv %s; re-listing", self.resource_version)
                need_list = True
            except asyncio.CancelledError:
                raise
            except (ApiException, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning(
                    "pod informer: %s; retrying in %.1fs", _describe(exc), self.retry_backoff_s
                )
                await asyncio.sleep(self.retry_backoff_s)
                if isinstance(exc, ApiException) and exc.status == 410:
                    need_list = True

    async def _list(self) -> None:
        fresh, rv = await self.lister.list_views()
        old = self.cache
        self.cache = fresh
        self._by_tenant = {}
        for name, pod in fresh.items():
            self._index(name, None, pod)
        self.resource_version = rv
        self.relists += 1
        events: list[PodEvent] = []
        for name, pod in old.items():
            if name not in fresh:
                events.append((DELETED, pod))
        for name, pod in fresh.items():
            before = old.get(name)
            if before is None:
                events.append((ADDED, pod))
            elif before["metadata"].get("resourceVersion") != pod["metadata"].get(
                "resourceVersion"
            ):
                events.append((MODIFIED, pod))
        self.synced.set()
        for event in events:
            self._publish(event)
        self._check_waiters()

    async def _watch(self) -> None:
        resp = await self._core.list_namespaced_pod(
            self.namespace,
            label_selector=self.label_selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout_s,
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(
                total=None, connect=10, sock_read=self.watch_timeout_s + 30
            ),
        )
        try:
            if resp.status != 200:
                body = await resp.read()
                if resp.status == 410:
                    raise _Expired()
                raise ApiException(http_resp=cast(Any, RESTResponse(resp, body)))
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._on_event(json.loads(line))
        finally:
            resp.release()

    def _on_event(self, event: JSON) -> None:
        kind = event.get("type")
        obj: JSON = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Expired()
            raise ApiException(status=code, reason=f"{obj.get('reason')}: {obj.get('message')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
                self._check_waiters()  # waits on "caught up with RV n" end here
            return
        if obj.get("kind", "Pod") != "Pod":
            # A real apiserver never sends this; a test double once did. Never cache it.
            log.warning("pod informer: ignoring a %s in the pod watch", obj.get("kind"))
            return
        if kind not in (ADDED, MODIFIED, DELETED):
            log.warning("pod informer: ignoring event type %r", kind)
            return
        obj = pod_view(obj)
        name = obj["metadata"]["name"]
        if kind == DELETED:
            self._index(name, self.cache.pop(name, None), None)
        else:
            self._index(name, self.cache.get(name), obj)
            self.cache[name] = obj
        if rv:
            self.resource_version = rv
        self._publish((kind, obj))
        self._check_waiters()

    def _publish(self, event: PodEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _check_waiters(self) -> None:
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            try:
                result = waiter.predicate(self.cache)
            except Exception as exc:
                waiter.future.set_exception(exc)
                continue
            if result is not None:
                waiter.future.set_result(result)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"API error {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
