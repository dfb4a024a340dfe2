"""kubernetes_asyncio with plain JSON dicts in and out.

The generated model classes cost CPU on every watch event and hide the wire format our
manifests are written in, so calls go out with ``_preload_content=False`` and their bodies
are parsed here. Errors are the library's ApiException (status, reason, body), as without
this layer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.rest import RESTResponse

JSON = dict[str, Any]

__all__ = ["JSON", "ApiException", "api_status", "call_json", "call_raw", "open_api_client"]


async def open_api_client(kubeconfig: str | None) -> Any:
    """An ApiClient from a kubeconfig file, or the in-cluster service account when None.
    The caller closes it (``await api.close()``)."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


async def call_json(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> JSON:
    """Call a generated API method and return the response body as a dict."""
    body = await call_raw(fn, *args, **kwargs)
    result: JSON = json.loads(body) if body else {}
    return result


async def call_raw(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> bytes:
    """Call a generated API method and return the response body unparsed."""
    resp = await fn(*args, _preload_content=False, **kwargs)
    try:
        body: bytes = await resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=cast(Any, RESTResponse(resp, body)))
        return body
    finally:
        resp.release()


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of an API error, None for anything else."""
    if isinstance(exc, ApiException):
        return int(exc.status) if exc.status is not None else None
    return None
