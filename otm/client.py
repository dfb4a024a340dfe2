"""Synchronous admin-API client for the CLI (stdlib only: keeps `otm` startup fast).

Discovery: ``--server`` / ``OTM_SERVER``, else ``{data_dir}/daemon.json`` written by a
running embedded daemon. Token: ``--token`` / ``OTM_ADMIN_TOKEN`` / ``{data_dir}/admin-token``.
Every failure becomes a :class:`CliError` with a one-line message and an exit code.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import urllib.parse
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.settings import Settings

DEFAULT_TIMEOUT_S = 10.0
# Streams get a keepalive comment every 15 s; three missed ones mean the daemon is gone.
STREAM_READ_TIMEOUT_S = 45.0
START_HINT = "start it with `otm daemon`"

QueryValue = str | int | float | None
"""A query parameter's value; the None ones are left out of the URL."""
Query = Mapping[str, QueryValue]


class CliError(Exception):
    """A failure the CLI reports as one line on stderr; exit 1."""

    exit_code = 1


class UsageError(CliError):
    """Bad input caught before anything was sent; exit 2 like click's usage errors (and
    like the daemon's own validation errors, see ApiError)."""

    exit_code = 2


class DaemonUnreachable(CliError):
    pass


class ApiError(CliError):
    """The daemon answered with an error status; ``message`` is its ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # One rule for client- and server-side validation: invalid input exits 2.
        self.exit_code = 2 if status == 400 else 1


def default_data_dir() -> Path:
    """The daemon's own default (daemon/settings.py), so both sides agree."""
    return Settings().data_dir


@dataclass(frozen=True)
class Target:
    """Where the daemon is and how to authenticate, before any request is made."""

    server: str
    token: str | None
    data_dir: Path


def resolve_data_dir(data_dir: Path | str | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if data_dir:
        return Path(data_dir).expanduser()
    if env.get("OTM_DATA_DIR"):
        return Path(env["OTM_DATA_DIR"]).expanduser()
    return default_data_dir()


def resolve_target(
    *,
    server: str | None = None,
    token: str | None = None,
    data_dir: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """Apply flag > env > data-dir file precedence for the server URL and the token."""
    env = os.environ if env is None else env
    directory = resolve_data_dir(data_dir, env)
    url = server or env.get("OTM_SERVER") or _discovered_server(directory)
    token = token or env.get("OTM_ADMIN_TOKEN") or _stored_token(directory)
    return Target(server=url.rstrip("/"), token=token, data_dir=directory)


def _discovered_server(data_dir: Path) -> str:
    path = data_dir / "daemon.json"
    try:
        info = json.loads(path.read_text())
        url = info["admin_url"]
    except FileNotFoundError:
        raise DaemonUnreachable(
            f"no running daemon found ({path} does not exist): {START_HINT}, "
            "or point at one with --server / OTM_SERVER"
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise DaemonUnreachable(f"cannot read {path}: {START_HINT}") from None
    if not isinstance(url, str):
        raise DaemonUnreachable(f"cannot read {path}: {START_HINT}")
    return url


def _stored_token(data_dir: Path) -> str | None:
    try:
        return (data_dir / "admin-token").read_text().strip() or None
    except OSError:
        return None


class AdminClient:
    """One daemon, one token; a fresh connection per request (the CLI makes few)."""

    def __init__(self, target: Target, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.target = target
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(target.server)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UsageError(f"invalid server URL {target.server!r} (expected http://host:port)")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._base_path = parsed.path.rstrip("/")

    # -- plain JSON requests ---------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Query | None = None,
        timeout: float | None = None,
    ) -> Any:
        """JSON body of a 2xx answer (None for 204); ApiError otherwise."""
        conn, resp = self._open(method, path, body=body, query=query, timeout=timeout)
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        finally:
            conn.close()
        if resp.status == 204 or not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(f"daemon sent a malformed answer to {method} {path}") from None

    def get(self, path: str, **query: QueryValue) -> Any:
        return self.request("GET", path, query=query)

    # -- streams -----------------------------------------------------------------
    def stream_lines(
        self,
        path: str,
        *,
        query: Query | None = None,
        read_timeout: float | None,
    ) -> Generator[str, None, None]:
        """Lines of a (chunked) text answer as they arrive, without line endings.
        ``read_timeout`` bounds the wait for each line (None: wait for ever, e.g. -f)."""
        conn, resp = self._open("GET", path, query=query, stream_timeout=(read_timeout,))
        try:
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise CliError(f"lost the connection to the daemon: {_reason(exc)}") from None
                if not line:
                    return
                yield line.decode("utf-8", "replace").rstrip("\r\n")
        finally:
            conn.close()

    def stream_events(
        self, path: str, *, query: Query | None = None
    ) -> Generator[tuple[str, Any], None, None]:
        """Server-sent events as ``(event name, decoded JSON data)``; comments skipped."""
        event, data = "message", list[str]()
        lines = self.stream_lines(path, query=query, read_timeout=STREAM_READ_TIMEOUT_S)
        with contextlib.closing(lines):  # closing us closes the connection at once
            for line in lines:
                if not line:
                    if data:
                        yield event, _decode_event(data)
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)

    # -- internals -----------------------------------------------------------------
    def _open(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Query | None = None,
        timeout: float | None = None,
        stream_timeout: tuple[float | None] | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request; ``stream_timeout=(t,)`` sets the per-read timeout once the
        headers are in (a stream waits longer between lines than for its headers)."""
        url = self._base_path + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn_cls = (
            http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_cls(self._host, self._port, timeout=timeout or self.timeout)
        try:
            conn.request(method, url, body=payload, headers=headers)
            sock = conn.sock  # getresponse() may drop conn.sock; the response keeps using it
            resp = conn.getresponse()
            if stream_timeout is not None and sock is not None:
                sock.settimeout(stream_timeout[0])
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._unreachable(exc) from None
        if resp.status >= 400:
            try:
                raise self._api_error(resp)
            finally:
                conn.close()
        return conn, resp

    def _api_error(self, resp: http.client.HTTPResponse) -> ApiError:
        try:
            message = str(json.loads(resp.read())["error"])
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            message = resp.reason or f"HTTP {resp.status}"
        if resp.status == 401:
            message = (
                f"unauthorized: {message} (pass --token, set OTM_ADMIN_TOKEN, or check "
                f"{self.target.data_dir / 'admin-token'})"
            )
        return ApiError(resp.status, message)

    def _unreachable(self, exc: BaseException) -> DaemonUnreachable:
        return DaemonUnreachable(
            f"cannot reach the otm daemon at {self.target.server} ({_reason(exc)}): {START_HINT}"
        )


def _decode_event(data: list[str]) -> Any:
    try:
        return json.loads("\n".join(data))
    except ValueError:
        raise CliError("daemon sent a malformed event") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
