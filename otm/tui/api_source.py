"""TenantSource over the daemon's admin API, with aiohttp: every call is a coroutine the
dashboard runs in a worker, and cancelling it (leaving a screen, quitting) closes the
connection at once, which a blocking client in a thread could not do.

Discovery and token come from otm/client.py (``resolve_target``), the same rules as the
CLI: flag > env > ``{data_dir}/daemon.json`` / ``{data_dir}/admin-token``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from otm.client import Target
from otm.tui.source import (
    BufferInfo,
    Delete,
    Record,
    Snapshot,
    SourceError,
    SourceUnavailable,
    TenantDetails,
    Upsert,
    WatchEvent,
)

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_connect=5.0, sock_read=15.0)
# The daemon sends a keepalive comment every 15 s: three missed ones mean it is gone.
WATCH_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_connect=5.0, sock_read=45.0)
# A followed log may stay quiet for a long time; the operator ends it by leaving the screen.
# A restore answers once the agent runs again: a drain, a save, a boot (minutes).
RESTORE_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_connect=5.0, sock_read=720.0)
LOGS_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_connect=5.0, sock_read=None)
MAX_LINE_BYTES = 1 << 20


class SseParser:
    """Server-sent events, one line at a time: ``feed`` returns ``(event, data)`` when a
    blank line completes an event. Comments (keepalives) are skipped."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            done = (self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = "message", []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def watch_event(event: str, data: str) -> WatchEvent | None:
    """Decode one /v1/watch event (None for kinds this dashboard does not know)."""
    try:
        body = json.loads(data)
    except ValueError:
        raise SourceUnavailable("the daemon sent a malformed watch event") from None
    if event == "snapshot":
        return Snapshot(tuple(body["items"]))
    if event == "tenant":
        tenant = body["tenant"]
        if body.get("type") == "delete":
            return Delete(str(tenant["tenant_id"]))
        return Upsert(tenant)
    return None


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """Text lines without their endings; a line longer than MAX_LINE_BYTES is cut, not fatal
    (aiohttp's own readline refuses long lines)."""
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        while True:
            cut = pending.find(b"\n")
            if cut < 0:
                break
            yield pending[:cut].decode("utf-8", "replace").rstrip("\r")
            pending = pending[cut + 1 :]
        if len(pending) > MAX_LINE_BYTES:
            yield pending.decode("utf-8", "replace")
            pending = b""
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")


class ApiTenantSource:
    """One aiohttp session for the dashboard's lifetime: ``async with`` it around the app."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._session: aiohttp.ClientSession | None = None

    @property
    def label(self) -> str:
        return self.target.server

    async def __aenter__(self) -> ApiTenantSource:
        headers = {"Accept": "application/json"}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        self._session = aiohttp.ClientSession(headers=headers, timeout=REQUEST_TIMEOUT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- plain requests ------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self.target.server + path

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ApiTenantSource used outside `async with`")
        return self._session

    async def _json(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        try:
            async with self.session.request(
                method, self._url(path), json=body, timeout=timeout or REQUEST_TIMEOUT
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise SourceError(_error_message(resp.status, raw, resp.reason))
                if resp.status == 204 or not raw:
                    return None
                return json.loads(raw)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SourceUnavailable(_unreachable(self.target.server, exc)) from None
        except ValueError:
            raise SourceError(f"the daemon sent a malformed answer to {method} {path}") from None

    async def get_status(self) -> Record:
        status: Record = await self._json("GET", "/v1/status")
        return status

    async def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = await self._json("GET", "/v1/config")
        return config

    async def set_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = await self._json("PATCH", "/v1/config", body=dict(changes))
        return config

    async def _tenant_action(self, tenant_id: str, action: str) -> Record:
        record: Record = await self._json("POST", f"{_tenant_path(tenant_id)}/{action}")
        return record

    async def wake(self, tenant_id: str) -> Record:
        return await self._tenant_action(tenant_id, "wake")

    async def sleep(self, tenant_id: str) -> Record:
        return await self._tenant_action(tenant_id, "sleep")

    async def delete(self, tenant_id: str) -> None:
        await self._json("DELETE", _tenant_path(tenant_id))

    async def suspend(self, tenant_id: str) -> Record:
        return await self._tenant_action(tenant_id, "suspend")

    async def resume(self, tenant_id: str) -> Record:
        return await self._tenant_action(tenant_id, "resume")

    async def create(self, body: Mapping[str, Any]) -> Record:
        record: Record = await self._json("POST", "/v1/tenants", body=body)
        return record

    async def update(self, tenant_id: str, changes: Mapping[str, Any]) -> Record:
        record: Record = await self._json("PATCH", _tenant_path(tenant_id), body=changes)
        return record

    async def buffered(self, tenant_id: str) -> int | None:
        info = await self._buffer(tenant_id)
        return None if info is None else info.pending

    async def _buffer(self, tenant_id: str) -> BufferInfo | None:
        try:
            body = await self._json("GET", f"{_tenant_path(tenant_id)}/buffer")
        except SourceUnavailable:
            raise
        except SourceError:
            return None  # a daemon without the endpoint, or the tenant just went away
        dead = body.get("dead_letters")
        return BufferInfo(int(body["pending"]), None if dead is None else int(dead))

    async def snapshots(self, tenant_id: str) -> list[Record]:
        body = await self._json("GET", f"{_tenant_path(tenant_id)}/snapshots")
        return list(body["items"])

    async def restore(self, tenant_id: str, key: str) -> Record:
        path = f"{_tenant_path(tenant_id)}/restore"
        result: Record = await self._json(
            "POST", path, body={"snapshot": key}, timeout=RESTORE_TIMEOUT
        )
        return result

    async def describe(self, tenant_id: str) -> TenantDetails:
        path = _tenant_path(tenant_id)
        record, events, buffer, usage = await asyncio.gather(
            self._json("GET", path),
            self._json("GET", f"{path}/events"),
            self._buffer(tenant_id),
            self._usage(f"&tenant={tenant_id}"),
        )
        return TenantDetails(
            record=record, events=list(events["items"]), buffer=buffer, usage=usage.get(tenant_id)
        )

    async def usage(self) -> dict[str, Record]:
        return await self._usage("")

    async def audit(self, tenant_id: str | None, *, limit: int) -> list[Record]:
        query = f"?limit={limit}" + (f"&tenant={quote(tenant_id, safe='')}" if tenant_id else "")
        body = await self._json("GET", f"/v1/audit{query}")
        return list(body["items"])

    async def _usage(self, query: str) -> dict[str, Record]:
        try:
            body = await self._json("GET", f"/v1/usage?since=24h{query}")
        except SourceUnavailable:
            raise
        except SourceError:
            return {}  # a daemon without the endpoint
        return {str(item["tenant_id"]): item for item in body.get("items") or []}

    # -- streams -------------------------------------------------------------------
    async def watch(self) -> AsyncIterator[WatchEvent]:
        parser = SseParser()
        try:
            async with self.session.get(
                self._url("/v1/watch"),
                timeout=WATCH_TIMEOUT,
                headers={"Accept": "text/event-stream"},
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    message = _error_message(resp.status, raw, resp.reason)
                    if resp.status in (401, 403):
                        raise SourceError(message)
                    raise SourceUnavailable(message)
                async for line in _lines(resp.content):
                    done = parser.feed(line)
                    if done is not None:
                        event = watch_event(*done)
                        if event is not None:
                            yield event
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SourceUnavailable(_unreachable(self.target.server, exc)) from None
        raise SourceUnavailable("the daemon closed the watch stream")

    async def logs(
        self, tenant_id: str, *, follow: bool, since_s: float | None
    ) -> AsyncIterator[str]:
        params = {"follow": "true" if follow else "false"}
        if since_s is not None:
            params["since_s"] = str(since_s)
        try:
            async with self.session.get(
                self._url(f"{_tenant_path(tenant_id)}/logs"),
                params=params,
                timeout=LOGS_TIMEOUT,
                headers={"Accept": "text/plain"},
            ) as resp:
                if resp.status >= 400:
                    raise SourceError(_error_message(resp.status, await resp.read(), resp.reason))
                async for line in _lines(resp.content):
                    yield line
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SourceUnavailable(_unreachable(self.target.server, exc)) from None


def _tenant_path(tenant_id: str) -> str:
    return f"/v1/tenants/{quote(tenant_id, safe='')}"


def _error_message(status: int, raw: bytes, reason: str | None) -> str:
    try:
        message = str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        message = reason or f"HTTP {status}"
    if status == 401:
        return f"unauthorized: {message} (check --token / OTM_ADMIN_TOKEN)"
    if status in (404, 405) and "tenant" not in message:
        return f"{message} (this daemon does not support it yet)"
    return message


def _unreachable(server: str, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        reason = "timed out"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        reason = (
            "connection refused"
            if isinstance(exc.os_error, ConnectionRefusedError)
            else (exc.os_error.strerror or str(exc.os_error))
        )
    else:
        reason = str(exc) or type(exc).__name__
    return f"cannot reach {server}: {reason}"
