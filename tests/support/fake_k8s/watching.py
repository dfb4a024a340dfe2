"""The watch protocol: a chunked stream of JSON lines `{"type": ..., "object": ...}`.

* `resourceVersion` unset, "" or "0": synthetic ADDED for every current object, then live.
* `resourceVersion=N`: replay the history after N, then live; N older than the compacted
  history → one ERROR event carrying a 410 Expired Status, then the stream ends.
* `sendInitialEvents=true` (needs `allowWatchBookmarks=true` and
  `resourceVersionMatch=NotOlderThan`, as on a real apiserver): ADDED for every current
  object, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"`.
* `allowWatchBookmarks=true`: a BOOKMARK (only `metadata.resourceVersion`) every
  `bookmark_interval` seconds.
* Selectors have transition semantics: an object that stops matching is reported as
  DELETED, one that starts matching as ADDED.
* `timeoutSeconds` ends the stream cleanly; so does `FakeKubernetes.drop_watches()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import errors
from .resources import ResourceType
from .selectors import Matcher
from .store import Change, Store, Subscription

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# How often an idle watch checks whether its client went away.
_IDLE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class WatchOptions:
    resource_version: str
    allow_bookmarks: bool
    send_initial_events: bool | None
    resource_version_match: str | None
    timeout_seconds: float | None

    def check(self, rt: ResourceType) -> None:
        """The apiserver's parameter validation for watches (422 Invalid)."""
        causes = []
        if self.send_initial_events:
            if not self.allow_bookmarks:
                causes.append(
                    (
                        "FieldValueForbidden",
                        "allowWatchBookmarks",
                        "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                    )
                )
            if self.resource_version_match != "NotOlderThan":
                causes.append(
                    (
                        "FieldValueForbidden",
                        "resourceVersionMatch",
                        "Forbidden: sendInitialEvents requires setting "
                        "resourceVersionMatch to NotOlderThan",
                    )
                )
        elif self.resource_version_match:
            causes.append(
                (
                    "FieldValueForbidden",
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden for watch unless "
                    "sendInitialEvents is provided",
                )
            )
        if self.resource_version not in ("", "0") and not self.resource_version.isdigit():
            raise errors.bad_request(f"invalid resourceVersion {self.resource_version!r}")
        if causes:
            raise errors.invalid(rt, "", causes)


def _line(event_type: str, object_json: str) -> bytes:
    return f'{{"type":"{event_type}","object":{object_json}}}\n'.encode()


def bookmark(rt: ResourceType, rv: int, *, initial_events_end: bool = False) -> bytes:
    meta: JSON = {"resourceVersion": str(rv)}
    if initial_events_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
    return _line("BOOKMARK", json.dumps(obj, separators=(",", ":")))


def visible_event(
    change: Change, namespace: str | None, matches: Matcher
) -> tuple[str, Change] | None:
    """What a watch with this namespace and selectors reports for a change, if anything."""
    if namespace is not None and change.obj["metadata"].get("namespace") != namespace:
        return None
    now_matches = matches(change.obj)
    if change.type == "ADDED":
        return ("ADDED", change) if now_matches else None
    was_matching = change.old is not None and matches(change.old)
    if change.type == "DELETED":
        return ("DELETED", change) if now_matches or was_matching else None
    if now_matches and was_matching:
        return ("MODIFIED", change)
    if now_matches:
        return ("ADDED", change)
    if was_matching:
        return ("DELETED", change)
    return None


async def serve_watch(
    request: web.Request,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    matches: Matcher,
    options: WatchOptions,
    *,
    bookmark_interval: float,
) -> web.StreamResponse:
    options.check(rt)
    # Snapshot or replay, and subscribe, with no await in between: nothing can slip through.
    subscription = store.subscribe(rt)
    initial: list[bytes] = []
    replay: list[Change] = []
    expired: errors.ApiError | None = None
    start_rv = store.resource_version
    if options.send_initial_events or (
        options.resource_version in ("", "0") and options.send_initial_events is None
    ):
        initial = [
            _line("ADDED", json.dumps(obj, separators=(",", ":")))
            for obj in store.snapshot(rt, namespace)
            if matches(obj)
        ]
    elif options.resource_version not in ("", "0"):
        try:
            # The change log spans every resource type; a watch sees only its own.
            replay = [
                change
                for change in store.changes_since(int(options.resource_version))
                if change.resource == rt
            ]
        except errors.ApiError as exc:
            expired = exc

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await response.prepare(request)
        if expired is not None:
            await response.write(_line("ERROR", json.dumps(expired.status())))
            return response
        for line in initial:
            await response.write(line)
        if options.send_initial_events:
            await response.write(bookmark(rt, start_rv, initial_events_end=True))
        for change in replay:
            if (event := visible_event(change, namespace, matches)) is not None:
                await response.write(_line(event[0], change.object_json))
        await _stream_live(
            request,
            response,
            store,
            rt,
            namespace,
            matches,
            options,
            subscription,
            seen_rv=start_rv,
            bookmark_interval=bookmark_interval,
        )
    except ConnectionResetError:  # the client went away; nothing left to tell it
        logger.debug("watch client went away: %s", request.path_qs)
    finally:
        store.unsubscribe(subscription)
    return response


async def _stream_live(
    request: web.Request,
    response: web.StreamResponse,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    matches: Matcher,
    options: WatchOptions,
    subscription: Subscription,
    *,
    seen_rv: int,
    bookmark_interval: float,
) -> None:
    clock = time.monotonic
    deadline = clock() + options.timeout_seconds if options.timeout_seconds else None
    next_bookmark = clock() + bookmark_interval if options.allow_bookmarks else None
    while True:
        now = clock()
        if deadline is not None and now >= deadline:
            return
        if next_bookmark is not None and now >= next_bookmark:
            # With the queue drained, every change up to the store's RV has been seen.
            rv = store.resource_version if subscription.queue.empty() else seen_rv
            await response.write(bookmark(rt, rv))
            next_bookmark = now + bookmark_interval
        wake = min(t for t in (deadline, next_bookmark, now + _IDLE_CHECK_SECONDS) if t is not None)
        try:
            change = await asyncio.wait_for(subscription.queue.get(), max(0.0, wake - now))
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            continue
        if change is None:  # the server dropped this watch
            return
        seen_rv = change.rv
        if (event := visible_event(change, namespace, matches)) is not None:
            await response.write(_line(event[0], change.object_json))
