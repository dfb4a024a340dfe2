"""HTTP layer: URL routing, query parameters, bodies, auth, fault injection, Status errors."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import errors, podstatus
from .errors import ApiError
from .podlogs import PodLogs, serve_log
from .rbac import MASTERS, Authorizer, ServedRequest, request_attributes
from .resources import PODS, ResourcePath, ResourceType, parse_path
from .selectors import object_matcher
from .store import Store
from .watching import WatchOptions, serve_watch

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
_NOT_FOUND = "the server could not find the requested resource"
_FAULT_REASONS = {
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Fault:
    """Hold the next `remaining` matching API requests for `delay` seconds, then answer
    them with an error `status` (or, with status None, normally)."""

    status: int | None
    remaining: int
    path_contains: str | None = None
    method: str | None = None
    delay: float = 0.0

    def matches(self, request: web.Request) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == request.method)
            and (self.path_contains is None or self.path_contains in request.path)
        )


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str


@dataclass(eq=False)
class ApiState:
    store: Store
    logs: PodLogs
    authorizer: Authorizer
    bookmark_interval: float
    faults: list[Fault] = field(default_factory=list)
    requests: deque[RecordedRequest] = field(default_factory=lambda: deque(maxlen=5000))
    served: list[ServedRequest] = field(default_factory=list)
    """Requests that passed authentication and authorization (recorded only while
    ``record_served`` is on: unbounded, for tests that derive the RBAC a client needs)."""
    record_served: bool = False


API_STATE = web.AppKey("fake_k8s_api_state", ApiState)


def status_response(error: ApiError) -> web.Response:
    headers = {}
    if error.code == 429:
        headers["Retry-After"] = "1"
    return web.json_response(error.status(), status=error.code, headers=headers)


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[API_STATE]
    state.requests.append(
        RecordedRequest(request.method, request.path, dict(request.query), request.content_type)
    )
    try:
        user = state.authorizer.user_for(request)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if request.path.startswith("/_fake/"):
            if user != MASTERS:
                raise ApiError(403, "Forbidden", "the fake's control API is for its admin")
        else:
            attrs = request_attributes(request.method, request.path, request.query)
            state.authorizer.check(user, attrs)
            if state.record_served:
                state.served.append(ServedRequest(user, attrs))
            fault = next((f for f in state.faults if f.matches(request)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    reason = _FAULT_REASONS.get(fault.status, "InternalError")
                    raise ApiError(fault.status, reason, f"injected fault ({fault.status})")
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as error:
        return status_response(error)


def qbool(request: web.Request, name: str) -> bool | None:
    """kubernetes_asyncio sends `True`; Go clients send `true`; some send `1`."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise errors.bad_request(f"invalid boolean {value!r} for parameter {name}")


def qint(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f"invalid integer {value!r} for parameter {name}") from None


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    if "json" not in request.content_type and "yaml" not in request.content_type:
        raise errors.unsupported_media_type(request.content_type)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None


async def version(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-otm-fake",
            "platform": "linux/amd64",
        }
    )


async def dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[API_STATE]
    target = parse_path(request.path)
    if target is None:
        raise ApiError(404, "NotFound", _NOT_FOUND)
    if request.query.get("dryRun"):
        raise errors.bad_request("dryRun is not supported by the fake apiserver")
    rt, method = target.resource, request.method
    if rt.namespaced and target.namespace is None and target.name is not None:
        raise ApiError(404, "NotFound", _NOT_FOUND)
    if target.subresource == "log" and rt.is_pod and method == "GET":
        assert target.namespace is not None and target.name is not None
        return await serve_log(
            request,
            state.store,
            state.logs,
            target.namespace,
            target.name,
            bool(qbool(request, "follow")),
        )
    if target.subresource == "binding" and rt.is_pod and method == "POST":
        return await _bind(request, state.store, target)
    if target.subresource not in (None, "status"):
        raise ApiError(404, "NotFound", _NOT_FOUND)
    if target.name is None:
        if method == "GET":
            if qbool(request, "watch"):
                return await _watch(request, state, target)
            return _list(request, state.store, target)
        if method == "POST":
            return await _create(request, state.store, target)
        if method == "DELETE":
            return await _delete_collection(request, state.store, target)
    elif method == "GET":
        return web.json_response(state.store.get(rt, target.namespace, target.name))
    elif method == "PUT":
        obj = state.store.replace(
            rt,
            target.namespace,
            target.name,
            await read_body(request),
            subresource=target.subresource,
        )
        return web.json_response(obj)
    elif method == "PATCH":
        obj = state.store.patch(
            rt,
            target.namespace,
            target.name,
            request.content_type,
            await read_body(request),
            subresource=target.subresource,
        )
        return web.json_response(obj)
    elif method == "DELETE" and target.subresource is None:
        return await _delete(request, state.store, target)
    raise errors.method_not_allowed(f"the server does not allow this method ({method}) here")


def _matcher(request: web.Request, rt: ResourceType) -> Any:
    return object_matcher(
        rt, request.query.get("labelSelector"), request.query.get("fieldSelector")
    )


def _list(request: web.Request, store: Store, target: ResourcePath) -> web.Response:
    """A list, paginated as etcd serves it: `limit` cuts a page and returns a `continue`
    token; the pages after it show the objects as they were at the first page's RV (one
    consistent snapshot) and carry that RV, until compaction passes it (410 Expired)."""
    rt = target.resource
    matches = _matcher(request, rt)
    limit = qint(request, "limit")
    selected = request.query.get("labelSelector") or request.query.get("fieldSelector")
    # A page and one more (to know there is more); without selectors, all (to count them).
    enough = limit + 1 if limit and limit > 0 and selected else None
    after: tuple[str, str] | None = None
    token = request.query.get("continue")
    if token:
        if request.query.get("resourceVersion", "") not in ("", "0"):
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue"
            )
        rv, after = _decode_continue(token)
        if rv < store.compacted_rv:
            raise errors.expired(
                "The provided continue parameter is too old to display a "
                "consistent list result. You can start a new list without "
                "the continue parameter."
            )
    else:
        rv = store.resource_version
    items = store.list_at(rt, target.namespace, matches, rv, after=after, enough=enough)
    meta: JSON = {"resourceVersion": str(rv)}
    if limit and limit > 0 and len(items) > limit:
        meta["continue"] = _encode_continue(rv, _key(items[limit - 1]))
        if not selected:  # with a selector the apiserver cannot know how many match
            meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    # Committed objects are read-only: shallow copies without kind/apiVersion (list items
    # carry none on the wire) are enough to serialize, at any list size.
    wire = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
    body = {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": wire}
    # Compact, as the apiserver writes JSON (metadata before items, as Go's ListMeta is).
    return web.json_response(body, dumps=_compact_json)


def _compact_json(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _key(obj: JSON) -> tuple[str, str]:
    return obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def _encode_continue(rv: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"rv": rv, "after": list(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["after"][0]), str(data["after"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
        raise errors.bad_request("continue key is not valid") from None


async def _watch(request: web.Request, state: ApiState, target: ResourcePath) -> web.StreamResponse:
    options = WatchOptions(
        resource_version=request.query.get("resourceVersion", ""),
        allow_bookmarks=bool(qbool(request, "allowWatchBookmarks")),
        send_initial_events=qbool(request, "sendInitialEvents"),
        resource_version_match=request.query.get("resourceVersionMatch") or None,
        timeout_seconds=qint(request, "timeoutSeconds"),
    )
    return await serve_watch(
        request,
        state.store,
        target.resource,
        target.namespace,
        _matcher(request, target.resource),
        options,
        bookmark_interval=state.bookmark_interval,
    )


async def _create(request: web.Request, store: Store, target: ResourcePath) -> web.Response:
    rt = target.resource
    if rt.namespaced and target.namespace is None:
        raise errors.method_not_allowed("create needs a namespace in the URL")
    obj = store.create(rt, target.namespace, await read_body(request))
    return web.json_response(obj, status=201)


def _delete_options(request: web.Request, body: Any) -> tuple[int | None, JSON | None]:
    options = body if isinstance(body, dict) else {}
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = qint(request, "gracePeriodSeconds")
    return (None if grace is None else int(grace)), options.get("preconditions")


def _success(rt: ResourceType, obj: JSON) -> JSON:
    details: JSON = {
        "name": obj["metadata"]["name"],
        "kind": rt.plural,
        "uid": obj["metadata"]["uid"],
    }
    if rt.group:
        details["group"] = rt.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


async def _delete(request: web.Request, store: Store, target: ResourcePath) -> web.Response:
    rt = target.resource
    assert target.name is not None
    grace, preconditions = _delete_options(request, await read_body(request))
    obj, gone = store.delete(
        rt, target.namespace, target.name, grace_period_seconds=grace, preconditions=preconditions
    )
    # Like the apiserver: an object whose deletion is pending comes back as itself; one
    # removed at once comes back as itself only for types that opt in (pods).
    if gone and not rt.returns_deleted_object:
        return web.json_response(_success(rt, obj))
    return web.json_response(obj)


async def _delete_collection(
    request: web.Request, store: Store, target: ResourcePath
) -> web.Response:
    rt = target.resource
    grace, _ = _delete_options(request, await read_body(request))
    items, _ = store.list_matching(rt, target.namespace, _matcher(request, rt))
    for item in items:
        meta = item["metadata"]
        try:
            store.delete(rt, meta.get("namespace"), meta["name"], grace_period_seconds=grace)
        except ApiError as exc:
            if exc.code != 404:
                raise
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    )


async def _bind(request: web.Request, store: Store, target: ResourcePath) -> web.Response:
    """`pods/{name}/binding`: what a scheduler posts to assign a pod to a node."""
    assert target.name is not None
    body = await read_body(request) or {}
    node = ((body.get("target") or {}) if isinstance(body, dict) else {}).get("name")
    if not node:
        raise errors.invalid(
            PODS, target.name, [("FieldValueRequired", "target.name", "Required value")]
        )
    pod = store.get(PODS, target.namespace, target.name)
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        raise errors.conflict(
            PODS, target.name, f'pod {target.name} is already assigned to node "{bound}"'
        )
    store.mutate(PODS, target.namespace, target.name, lambda p: podstatus.mark_scheduled(p, node))
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
        status=201,
    )


def add_api_routes(app: web.Application) -> None:
    app.router.add_get("/version", version)
    app.router.add_route("*", "/{tail:.*}", dispatch)
