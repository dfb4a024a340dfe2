"""The informer's list: every pod, a page at a time, as views (pod_view.py).

* Paginated (``limit``/``continue``, ``LIST_PAGE_SIZE`` pods a page): an apiserver serves
  the pages after the first from the first one's snapshot, so together they are one
  consistent list at one resourceVersion; neither side holds every whole pod at once.
* Each page is decoded straight into views (pod_view.py): the fields no view holds are
  skipped, never built, so a page of 500 pods costs a few ms, not a json.loads of 2 MB.
* A continue token older than the apiserver's history is refused (410 Expired): the list
  starts over, ``LIST_ATTEMPTS`` times before the error goes to the informer's backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from daemon.kube.client import JSON, ApiException, call_raw
from daemon.kube.pod_view import decode_pod_list

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 500
"""Pods per list request, client-go's default page size: 10,000 pods come in 20 pages."""
LIST_ATTEMPTS = 3


class ListPage(NamedTuple):
    views: list[JSON]
    continue_token: str | None
    resource_version: str


class _ContinueExpired(Exception):
    def __init__(self, cause: ApiException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def parse_page(raw: bytes) -> ListPage:
    """A list response body as views (only the fields views hold are ever built)."""
    return ListPage(*decode_pod_list(raw))


@dataclass(eq=False)
class PodLister:
    core: Any
    """A kubernetes_asyncio CoreV1Api."""
    namespace: str
    label_selector: str
    page_size: int = LIST_PAGE_SIZE

    async def fetch_page(self, token: str | None) -> bytes:
        kwargs: dict[str, Any] = {"label_selector": self.label_selector, "limit": self.page_size}
        if token is not None:
            kwargs["_continue"] = token
        try:
            return await call_raw(self.core.list_namespaced_pod, self.namespace, **kwargs)
        except ApiException as exc:
            if exc.status == 410 and token is not None:
                raise _ContinueExpired(exc) from exc
            raise

    async def list_views(self) -> tuple[dict[str, JSON], str]:
        """Every pod as a view by name, and the list's resourceVersion."""
        for attempt in range(1, LIST_ATTEMPTS + 1):
            try:
                return await self._list_once()
            except _ContinueExpired as expired:
                if attempt == LIST_ATTEMPTS:
                    raise expired.cause from None
                log.info("pod list: continue token expired (history compacted); listing again")
        raise AssertionError("unreachable")

    async def _list_once(self) -> tuple[dict[str, JSON], str]:
        pods: dict[str, JSON] = {}
        token: str | None = None
        while True:
            page = parse_page(await self.fetch_page(token))
            for view in page.views:
                pods[view["metadata"]["name"]] = view
            if page.continue_token is None:
                return pods, page.resource_version
            token = page.continue_token
