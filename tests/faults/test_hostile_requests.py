"""1,000 malformed or hostile requests against the router and the admin API.

Zero crashes, zero 5xx, each request rejected with its right status, and
afterwards nothing woken (no agent, no Bot API call) and nothing buffered.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as aioredis
from yarl import URL

from daemon.redis_keys import PENDING_KEY, buffer_key
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import ADMIN_TOKEN, Daemon
from tests.faults.hostile import ADMIN, Case, HostileRequests

SEED = 20261125
COUNT = 1000
MAX_BODY_BYTES = 1 << 20  # the daemon's default max_body_bytes
CONCURRENCY = 16


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 64 << 10):
        yield body[start : start + (64 << 10)]


async def _send(http: aiohttp.ClientSession, daemon: Daemon, case: Case) -> int:
    base = daemon.admin_url if case.target == ADMIN else daemon.router_url
    url = URL(base + case.path, encoded=True)
    data: object = _chunks(case.body) if case.chunked else case.body
    try:
        async with http.request(
            case.method, url, headers=case.headers, data=data, allow_redirects=False
        ) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientError:
        # The server may answer 413 and close before the whole body is written.
        if 413 in case.expected:
            return 413
        raise


async def test_hostile_requests_are_rejected_and_change_nothing(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    secret = await daemon.create_tenant("guard", "4242:guard")
    calls_before = len(telegram.calls())
    cases = HostileRequests(
        SEED,
        tenant_id="guard",
        secret=secret,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=MAX_BODY_BYTES,
    ).cases(COUNT)
    gate = asyncio.Semaphore(CONCURRENCY)
    # A fresh connection per request: a rejected request may leave its connection closed.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def run(case: Case) -> tuple[Case, int]:
            async with gate:
                return case, await _send(http, daemon, case)

        results = await asyncio.gather(*(run(c) for c in cases))

    wrong = [f"{c.describe()} → {s} (want {sorted(c.expected)})" for c, s in results
             if s not in c.expected]  # fmt: skip
    server_errors = [c.describe() for c, s in results if s >= 500]
    assert not server_errors, "\n".join(server_errors[:20])
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong[:30])
    by_status = collections.Counter(s for _, s in results)
    assert set(by_status) <= {400, 401, 404, 405, 413}, by_status
    assert all(by_status[s] > 0 for s in (400, 401, 404, 405, 413)), by_status

    # The daemon is alive and answers.
    assert daemon.proc is not None and daemon.proc.returncode is None
    status, body = await daemon.api("GET", "/livez")
    assert status == 200, body
    # Nothing woken: no agent started, no Bot API call since the tenant's setWebhook.
    assert telegram.calls()[calls_before:] == []
    assert not (daemon.data_dir / "agents").exists() or not any(
        (daemon.data_dir / "agents").iterdir()
    )
    assert (await daemon.tenant("guard"))["status"] == "idle"
    # Nothing buffered, for any tenant.
    redis = aioredis.Redis.from_url(daemon.redis_url)
    try:
        assert [k async for k in redis.scan_iter(buffer_key("*"))] == []
        assert await redis.smembers(PENDING_KEY) == set()
    finally:
        await redis.aclose()
    status, metrics = await daemon.api("GET", "/metrics")
    assert status == 200
    assert 'otm_webhook_requests_total{status="5' not in metrics
    assert "otm_updates_buffered_total 0.0" in metrics
    assert "Traceback" not in daemon.log_tail(2000)
