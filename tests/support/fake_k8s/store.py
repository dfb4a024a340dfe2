"""The in-memory object store: one global resourceVersion, an event history, subscribers.

Every method is synchronous and runs on the server's event loop, so a read-modify-write
inside one call is atomic, and a watch that takes a snapshot and subscribes in one call
cannot miss or duplicate an event.

Committed objects are never mutated in place: writes build a new dict. `Change.obj` and
the objects handed to subscribers are therefore shared, read-only snapshots.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from . import errors
from .admission import DEFAULT_SERVICE_ACCOUNT, admit_pod
from .defaults import (
    apply_create_defaults,
    generated_name,
    new_uid,
    rfc3339,
    rfc3339_after,
)
from .patching import apply_patch
from .podstatus import node_ready
from .resources import ALL_RESOURCES, NAMESPACES, NODES, PODS, SERVICEACCOUNTS, ResourceType
from .selectors import Matcher
from .validation import validate_object
from .writes import check_micro_times, checked_body, updated_object

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

TERMINAL_POD_PHASES = ("Succeeded", "Failed")


@dataclass(eq=False)
class Change:
    """One committed write, as a watch sees it."""

    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    resource: ResourceType
    obj: JSON  # the object after the write (for DELETED: its final state)
    old: JSON | None

    @cached_property
    def object_json(self) -> str:
        """The object serialized once, shared by every watcher."""
        return json.dumps(self.obj, separators=(",", ":"))


@dataclass(eq=False)
class Subscription:
    """A live feed of changes; `None` in the queue means the server dropped the feed."""

    resource: ResourceType | None
    # An in-process cluster component (the kubelet), not an API watch: dropping watches
    # to simulate an apiserver restart leaves it alone.
    internal: bool = False
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self, *, history_limit: int = 10_000) -> None:
        self._objects: dict[ResourceType, dict[Key, JSON]] = {rt: {} for rt in ALL_RESOURCES}
        self._rv = 0
        self._serial = 0
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._compacted_rv = 0  # changes at or below this RV are no longer replayable
        self._subscriptions: set[Subscription] = set()
        self._grace_timers: dict[str, asyncio.TimerHandle] = {}

    # Reads ---------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        return self._compacted_rv

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        return copy.deepcopy(self._require(rt, namespace, name))

    def peek(self, rt: ResourceType, namespace: str | None, name: str) -> JSON | None:
        """The committed object itself (read-only), or None."""
        return self._objects[rt].get((namespace or "", name))

    def list_matching(
        self, rt: ResourceType, namespace: str | None, matches: Matcher | None = None
    ) -> tuple[list[JSON], int]:
        """Matching objects sorted by (namespace, name), and the RV of this snapshot."""
        items = [
            obj
            for (ns, _), obj in sorted(self._objects[rt].items())
            if (namespace is None or ns == namespace) and (matches is None or matches(obj))
        ]
        return copy.deepcopy(items), self._rv

    def list_at(
        self,
        rt: ResourceType,
        namespace: str | None,
        matches: Matcher | None,
        rv: int,
        *,
        after: Key | None = None,
        enough: int | None = None,
    ) -> list[JSON]:
        """Matching objects as they were at `rv` (read-only, sorted by key), those after
        the key `after` only, at most `enough` of them: what etcd serves a paginated list
        from, so that every page shows one snapshot. The history is undone back to `rv`;
        410 Expired when part of it was compacted away."""
        if rv < self._compacted_rv:
            raise errors.expired(f"too old resource version: {rv} ({self._compacted_rv})")
        objects = self._objects[rt]
        if rv < self._rv:
            objects = dict(objects)
            for change in reversed(self._history):
                if change.rv <= rv:
                    break
                if change.resource != rt:
                    continue
                meta = change.obj["metadata"]
                key = (meta.get("namespace") or "", meta["name"])
                if change.old is None:  # ADDED after rv: not there yet
                    objects.pop(key, None)
                else:
                    objects[key] = change.old
        keys = sorted(
            k
            for k in objects
            if (namespace is None or k[0] == namespace) and (after is None or k > after)
        )
        found: list[JSON] = []
        for key in keys:
            obj = objects[key]
            if matches is None or matches(obj):
                found.append(obj)
                if enough is not None and len(found) >= enough:
                    break
        return found

    def snapshot(self, rt: ResourceType, namespace: str | None) -> list[JSON]:
        """All objects of a type (read-only), for a watch's synthetic ADDED events."""
        return [
            obj
            for (ns, _), obj in sorted(self._objects[rt].items())
            if namespace is None or ns == namespace
        ]

    def changes_since(self, rv: int) -> list[Change]:
        """The history after `rv`; 410 Expired when part of it was compacted away."""
        if rv < self._compacted_rv:
            raise errors.expired(f"too old resource version: {rv} ({self._compacted_rv})")
        return [c for c in self._history if c.rv > rv]

    # Writes --------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: Any) -> JSON:
        obj = checked_body(rt, namespace, body)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        self._check_namespace_writable(rt, namespace, meta.get("name") or "")
        if rt.is_pod:
            admit_pod(self.peek, namespace or "", obj)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise errors.invalid(
                    rt,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            meta["name"] = self._free_name(rt, namespace, prefix)
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ):
            meta.pop(key, None)
        self._serial += 1
        apply_create_defaults(rt, obj, serial=self._serial)
        validate_object(rt, obj)
        if (namespace or "", meta["name"]) in self._objects[rt]:
            raise errors.already_exists(rt, meta["name"])
        meta.update(uid=new_uid(), creationTimestamp=rfc3339(), generation=1)
        if rt.namespaced:
            meta["namespace"] = namespace
        self._commit(rt, "ADDED", obj, None)
        if rt.is_namespace:  # what the serviceaccount controller adds to every namespace
            self.create(
                SERVICEACCOUNTS, meta["name"], {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}
            )
        return copy.deepcopy(obj)

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
    ) -> JSON:
        new = checked_body(rt, namespace, body)
        body_name = new["metadata"].get("name")
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        old = self._require(rt, namespace, name)
        wanted_rv = new["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise errors.stale_conflict(rt, name)
        return self._update(rt, old, new, subresource)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
    ) -> JSON:
        old = self._require(rt, namespace, name)
        new = apply_patch(content_type, copy.deepcopy(old), patch)
        check_micro_times(rt, new)
        # A patch that sets metadata.resourceVersion is a precondition on it.
        if (new.get("metadata") or {}).get("resourceVersion") != old["metadata"]["resourceVersion"]:
            raise errors.stale_conflict(rt, name)
        return self._update(rt, old, new, subresource)

    def mutate(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[JSON], None],
        *,
        uid: str | None = None,
    ) -> JSON | None:
        """Apply `change` to a copy and commit it, unvalidated: the cluster's own components
        (scheduler binding, kubelet status) write through here. None if the object is gone
        or was replaced by a namesake (another uid)."""
        old = self.peek(rt, namespace, name)
        if old is None or (uid is not None and old["metadata"]["uid"] != uid):
            return None
        new = copy.deepcopy(old)
        change(new)
        if new == old:
            return copy.deepcopy(old)
        self._commit(rt, "MODIFIED", new, old)
        self._finish_deletion_if_released(rt, new)
        return copy.deepcopy(self.peek(rt, namespace, name) or new)

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        preconditions: JSON | None = None,
    ) -> tuple[JSON, bool]:
        """Delete (or start deleting) an object: (its latest state, whether it is now gone)."""
        obj = self._require(rt, namespace, name)
        meta = obj["metadata"]
        preconditions = preconditions or {}
        if preconditions.get("uid") not in (None, meta["uid"]):
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: "
                f"{preconditions['uid']}, UID in object meta: "
                f"{meta['uid']}",
            )
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise errors.stale_conflict(rt, name)
        if grace_period_seconds is not None and grace_period_seconds < 0:
            grace_period_seconds = 0
        if rt.is_namespace:
            return self._delete_namespace(obj)
        grace = self._effective_grace(rt, obj, grace_period_seconds)
        if meta.get("deletionTimestamp"):
            current = meta.get("deletionGracePeriodSeconds") or 0
            if grace >= current:  # a repeated delete may only shorten the grace period
                return copy.deepcopy(obj), False
        if grace > 0 or meta.get("finalizers"):
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = rfc3339_after(grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            self._commit(rt, "MODIFIED", new, obj)
            if grace > 0:
                self._schedule_grace_expiry(rt, new, grace)
            return copy.deepcopy(new), False
        return copy.deepcopy(self._remove(rt, obj)), True

    def compact(self) -> int:
        """Forget all history: a watch from any RV before now gets 410 Expired."""
        self._history.clear()
        self._compacted_rv = self._rv
        return self._rv

    # Subscriptions -------------------------------------------------------------------------

    def subscribe(
        self, resource: ResourceType | None = None, *, internal: bool = False
    ) -> Subscription:
        sub = Subscription(resource, internal)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def drop_subscriptions(self, *, include_internal: bool = False) -> int:
        """End the API watch feeds (as an apiserver restart would); returns how many."""
        dropped = [s for s in self._subscriptions if include_internal or not s.internal]
        for sub in dropped:
            self._subscriptions.discard(sub)
            sub.queue.put_nowait(None)
        return len(dropped)

    def close(self) -> None:
        for timer in self._grace_timers.values():
            timer.cancel()
        self._grace_timers.clear()
        self.drop_subscriptions(include_internal=True)

    # Internals -----------------------------------------------------------------------------

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        obj = self._objects[rt].get((namespace or "", name))
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def _check_namespace_writable(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self._objects[NAMESPACES].get(("", namespace or ""))
        if ns is None:
            raise errors.namespace_not_found(namespace or "")
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                f'{rt.qualified_name} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated"
            )

    def _free_name(self, rt: ResourceType, namespace: str | None, prefix: str) -> str:
        for _ in range(8):
            name = generated_name(prefix)
            if (namespace or "", name) not in self._objects[rt]:
                return name
        raise errors.ApiError(500, "AlreadyExists", f"no free name for generateName {prefix!r}")

    def _update(self, rt: ResourceType, old: JSON, new: JSON, subresource: str | None) -> JSON:
        new = updated_object(rt, old, new, subresource)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["metadata"].pop("managedFields", None)
        if new == old:  # a no-op write neither bumps the RV nor emits an event
            return copy.deepcopy(old)
        self._commit(rt, "MODIFIED", new, old)
        self._finish_deletion_if_released(rt, new)
        current = self.peek(rt, new["metadata"].get("namespace"), new["metadata"]["name"])
        return copy.deepcopy(current if current is not None else new)

    def _effective_grace(self, rt: ResourceType, obj: JSON, requested: int | None) -> int:
        if not rt.is_pod:
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # The apiserver deletes a pod at once when no kubelet could be running it.
        if not spec.get("nodeName") or status.get("phase") in TERMINAL_POD_PHASES:
            return 0
        if requested is not None:
            return requested
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _schedule_grace_expiry(self, rt: ResourceType, obj: JSON, grace: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        meta = obj["metadata"]
        uid = meta["uid"]
        if uid in self._grace_timers:
            self._grace_timers.pop(uid).cancel()
        self._grace_timers[uid] = loop.call_later(
            grace, self._grace_expired, rt, meta.get("namespace"), meta["name"], uid
        )

    def _grace_expired(self, rt: ResourceType, namespace: str | None, name: str, uid: str) -> None:
        self._grace_timers.pop(uid, None)
        obj = self.peek(rt, namespace, name)
        if obj is None or obj["metadata"]["uid"] != uid:
            return
        node_name = (obj.get("spec") or {}).get("nodeName")
        node = self.peek(NODES, None, node_name) if rt.is_pod and node_name else None
        if node is not None and not node_ready(node):
            # Only the node's kubelet (or a force delete, or the node's removal) ends it.
            logger.debug("%s/%s stays Terminating on NotReady node %s", namespace, name, node_name)
            return
        logger.debug("grace period of %s/%s elapsed", namespace, name)
        self.delete(rt, namespace, name, grace_period_seconds=0)

    def _finish_deletion_if_released(self, rt: ResourceType, obj: JSON) -> None:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return
        if rt.is_namespace:
            self._finish_namespace_if_empty(meta["name"])
        elif not (rt.is_pod and (meta.get("deletionGracePeriodSeconds") or 0) > 0):
            self._remove(rt, obj)

    def _remove(self, rt: ResourceType, obj: JSON) -> JSON:
        meta = obj["metadata"]
        namespace = meta.get("namespace")
        timer = self._grace_timers.pop(meta["uid"], None)
        if timer is not None:
            timer.cancel()
        final = copy.deepcopy(obj)
        if rt.is_pod:
            final["metadata"].setdefault("deletionTimestamp", rfc3339())
            final["metadata"]["deletionGracePeriodSeconds"] = 0
        self._commit(rt, "DELETED", final, obj)
        if rt.namespaced and namespace:
            self._finish_namespace_if_empty(namespace)
        if rt.is_node:  # the pod GC force-deletes the pods bound to a node that is gone
            for pod in list(self._objects[PODS].values()):
                if (pod.get("spec") or {}).get("nodeName") == meta["name"]:
                    self._remove(PODS, pod)
        return final

    def _delete_namespace(self, ns: JSON) -> tuple[JSON, bool]:
        name = ns["metadata"]["name"]
        if not ns["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(ns)
            new["metadata"]["deletionTimestamp"] = rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            self._commit(NAMESPACES, "MODIFIED", new, ns)
            # The namespace controller deletes the contents; pods keep their grace periods.
            for rt in ALL_RESOURCES:
                if rt.namespaced:
                    for obj in self._in_namespace(rt, name):
                        self.delete(rt, name, obj["metadata"]["name"])
        gone = self._finish_namespace_if_empty(name)
        current = self.peek(NAMESPACES, None, name)
        return copy.deepcopy(current if current is not None else ns), gone

    def _in_namespace(self, rt: ResourceType, namespace: str) -> Iterable[JSON]:
        return [obj for (ns, _), obj in list(self._objects[rt].items()) if ns == namespace]

    def _finish_namespace_if_empty(self, namespace: str) -> bool:
        ns = self._objects[NAMESPACES].get(("", namespace))
        if ns is None:
            return True
        if not ns["metadata"].get("deletionTimestamp") or ns["metadata"].get("finalizers"):
            return False
        if any(self._in_namespace(rt, namespace) for rt in ALL_RESOURCES if rt.namespaced):
            return False
        final = copy.deepcopy(ns)
        final["spec"] = {}
        self._commit(NAMESPACES, "DELETED", final, ns)
        return True

    def _commit(self, rt: ResourceType, kind: str, obj: JSON, old: JSON | None) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        if kind == "DELETED":
            self._objects[rt].pop(key, None)
        else:
            self._objects[rt][key] = obj
        change = Change(self._rv, kind, rt, obj, old)
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._compacted_rv = self._history.popleft().rv
        for sub in list(self._subscriptions):
            if sub.resource is None or sub.resource == rt:
                sub.queue.put_nowait(change)
