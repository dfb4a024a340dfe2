"""Container logs: per-(pod uid, container) buffers and the `pods/log` endpoint.

The kubelet (or a pod backend through `PodContext.write_log`, or a test through
`FakeKubernetes.append_pod_log`) appends text; `follow=true` streams appends until the
container terminates, the pod goes away, the client leaves or the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import errors
from .resources import PODS
from .store import Store

JSON = dict[str, Any]
# A follower re-checks that its pod still exists this often, even with no new output.
_FOLLOW_RECHECK_SECONDS = 0.5


@dataclass
class LogBuffer:
    chunks: list[tuple[str, str]] = field(default_factory=list)  # (RFC 3339 nano time, text)
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, text: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.chunks.append((stamp, text))
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, max_wait: float) -> None:
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), max_wait)


def render(chunks: list[tuple[str, str]], *, timestamps: bool) -> str:
    if not timestamps:
        return "".join(text for _, text in chunks)
    lines = []
    for stamp, text in chunks:
        lines += [f"{stamp} {line}" for line in text.splitlines(keepends=True)]
    return "".join(lines)


class PodLogs:
    def __init__(self) -> None:
        self._buffers: dict[tuple[str, str], LogBuffer] = {}

    def buffer(self, uid: str, container: str) -> LogBuffer:
        return self._buffers.setdefault((uid, container), LogBuffer())

    def close_pod(self, uid: str) -> None:
        for (owner, _), buffer in self._buffers.items():
            if owner == uid:
                buffer.close()

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._buffers if k[0] == uid]:
            self._buffers.pop(key).close()

    def close_all(self) -> None:
        for buffer in self._buffers.values():
            buffer.close()


def _container_name(pod: JSON, requested: str | None) -> str:
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    init = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    if requested:
        if requested not in containers + init:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) != 1:
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: "
            f"[{' '.join(containers)}]"
        )
    return str(containers[0])


def _check_started(pod: JSON, container: str) -> None:
    """A container that never started has no logs: 400, as from a real kubelet."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status: Mapping[str, Any] = next((s for s in statuses if s.get("name") == container), {})
    state = status.get("state") or {}
    if "running" in state or "terminated" in state:
        return
    reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
    raise errors.bad_request(
        f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: {reason}'
    )


def _tail(text: str, tail_lines: str | None) -> str:
    if tail_lines is None:
        return text
    count = int(tail_lines)
    lines = text.splitlines(keepends=True)
    return "".join(lines[-count:]) if count > 0 else ""


async def serve_log(
    request: web.Request, store: Store, logs: PodLogs, namespace: str, name: str, follow: bool
) -> web.StreamResponse:
    pod = store.get(PODS, namespace, name)
    container = _container_name(pod, request.query.get("container"))
    if request.query.get("previous") in ("true", "True", "1"):
        # This fake never restarts a container in place: there is no previous instance,
        # which a kubelet answers with 400.
        raise errors.bad_request(
            f'previous terminated container "{container}" in pod '
            f'"{pod["metadata"]["name"]}" not found'
        )
    _check_started(pod, container)
    uid = pod["metadata"]["uid"]
    buffer = logs.buffer(uid, container)
    timestamps = request.query.get("timestamps") in ("true", "True", "1")
    text = _tail(render(buffer.chunks, timestamps=timestamps), request.query.get("tailLines"))
    if not follow:
        return web.Response(text=text, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    try:
        await response.write(text.encode())
        await _follow(request, response, store, buffer, (namespace, name, uid), timestamps)
        await response.write_eof()
    except ConnectionResetError:  # the client stopped following
        pass
    return response


async def _follow(
    request: web.Request,
    response: web.StreamResponse,
    store: Store,
    buffer: LogBuffer,
    pod: tuple[str, str, str],
    timestamps: bool,
) -> None:
    namespace, name, uid = pod
    sent = len(buffer.chunks)
    while True:
        if len(buffer.chunks) > sent:
            fresh = buffer.chunks[sent:]
            sent += len(fresh)
            await response.write(render(fresh, timestamps=timestamps).encode())
            continue
        current = store.peek(PODS, namespace, name)
        gone = current is None or current["metadata"]["uid"] != uid
        if buffer.closed or gone or request.transport is None or request.transport.is_closing():
            return
        await buffer.wait_for_change(_FOLLOW_RECHECK_SECONDS)
