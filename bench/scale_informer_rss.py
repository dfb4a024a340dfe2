"""What the daemon's pod informer holds: its cache's share of the daemon's RSS.

Run by bench/scale.py in a process of its own (``python -m bench.scale_informer_rss
KUBECONFIG NAMESPACE``): starts the daemon's PodInformer class and prints one JSON
line: RSS before and after its first list, the Python memory still held after it (the
cache: what the running pods cost the daemon through the informer) and the peak during
it (the response and its parse), traced by tracemalloc, and the cache's size in pods.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tracemalloc

from bench.common import rss_bytes
from daemon.kube.client import open_api_client
from daemon.kube.informer import PodInformer


async def measure(kubeconfig: str, namespace: str) -> dict[str, int]:
    api = await open_api_client(kubeconfig)
    informer = PodInformer(api, namespace)
    try:
        gc.collect()
        before = rss_bytes(os.getpid())
        tracemalloc.start()
        await informer.start(timeout=300)
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = rss_bytes(os.getpid())
        pods = len(informer.cache)
        return {"before": before, "after": after, "held": held, "peak": peak, "pods": pods}
    finally:
        await informer.stop()
        await api.close()


def main() -> int:
    kubeconfig, namespace = sys.argv[1:3]
    print(json.dumps(asyncio.run(measure(kubeconfig, namespace))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
