"""The garbage collector: when an object is gone, its dependents go too.

As kube-controller-manager's garbage collector with background propagation (the default
for every resource the fake serves): a namespaced object whose ``ownerReferences`` name
(by uid) only owners that no longer exist is deleted; one that still has a live owner
keeps living with the dead owner's reference removed. Owners are looked up in the
dependent's own namespace (a namespaced object cannot be owned across namespaces). It runs
after the owner's DELETED event, asynchronously, as the real controller does.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from . import errors
from .resources import ALL_RESOURCES
from .store import Change, Store, Subscription

logger = logging.getLogger(__name__)
JSON = dict[str, Any]


class GarbageCollector:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscription = self._store.subscribe(internal=True)
        self._task = asyncio.create_task(self._run(), name="fake-garbage-collector")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._store.unsubscribe(self._subscription)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        assert self._subscription is not None
        while True:
            change = await self._subscription.queue.get()
            if change is None:
                return
            if change.type == "DELETED":
                try:
                    self._collect(change)
                except Exception:  # a GC bug must show, not silently stop collecting
                    logger.exception("fake garbage collector failed on %s", change.obj)

    def _live_uids(self, namespace: str) -> set[str]:
        return {
            obj["metadata"]["uid"]
            for rt in ALL_RESOURCES
            if rt.namespaced
            for obj in self._store.snapshot(rt, namespace)
        }

    def _collect(self, change: Change) -> None:
        namespace = change.obj["metadata"].get("namespace")
        gone_uid = change.obj["metadata"].get("uid")
        if not namespace:
            return
        live: set[str] | None = None
        for rt in ALL_RESOURCES:
            if not rt.namespaced:
                continue
            for obj in self._store.snapshot(rt, namespace):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(ref.get("uid") == gone_uid for ref in refs):
                    continue
                live = live if live is not None else self._live_uids(namespace)
                remaining = [ref for ref in refs if ref.get("uid") in live]
                name = obj["metadata"]["name"]
                try:
                    if remaining:
                        new = copy.deepcopy(obj)
                        new["metadata"]["ownerReferences"] = remaining
                        self._store.replace(rt, namespace, name, new)
                    elif not obj["metadata"].get("deletionTimestamp"):
                        self._store.delete(rt, namespace, name)
                except errors.ApiError as exc:  # changed or gone meanwhile: the next event
                    logger.debug("gc of %s/%s: %s", namespace, name, exc.message)
