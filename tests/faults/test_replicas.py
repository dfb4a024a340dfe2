"""Two daemon replicas race on the same tenants: one Redis, one registry, one data dir,
one (fake) Kubernetes cluster running the agents (replicas share agents only there: a
local-runtime daemon owns its data dir alone). Telegram's deliveries (and its retries)
land on either replica. At most one agent per tenant at any moment, and every update
reaches it exactly once."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from pathlib import Path

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import STUB_DB
from tests.faults.support import Census, TelegramSender, wait_all_answered
from tests.k8s_runtime.support import NS
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.fake_cluster import kubernetes_daemon_env
from tests.support.fake_k8s import PODS
from tests.support.fake_k8s.fixture import FakeK8s

SEED = 19
PER_TENANT = 15
REPLY_TIMEOUT = 45.0


class PodCensus(Census):
    """The tenants' pods in the fake cluster."""

    task_name = "pod-census"

    def __init__(self, cluster: FakeK8s, tenants: list[str]) -> None:
        super().__init__(tenants)
        self.cluster = cluster

    async def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.tenants, 0)
        for pod in self.cluster.server.store.snapshot(PODS, NS):
            tenant_id = pod["metadata"].get("labels", {}).get("otm/tenant")
            if tenant_id in counts:
                counts[tenant_id] += 1
        return counts


def synced_update_log(data_dir: Path, tenant_id: str) -> list[int]:
    """update_ids the tenant's agent persisted, from its state synced by the pod."""
    db = sqlite3.connect(data_dir / "state" / "tenants" / tenant_id / "state" / STUB_DB)
    try:
        rows = db.execute("SELECT update_id FROM updates ORDER BY seq").fetchall()
    finally:
        db.close()
    return [int(r[0]) for r in rows]


async def test_two_replicas_one_agent_per_tenant_exactly_once(
    start_daemon: DaemonFactory, telegram: FakeTelegram, cluster: FakeK8s
) -> None:
    rng = random.Random(SEED)
    env = {
        **kubernetes_daemon_env(cluster),
    }
    first = await start_daemon(**env)
    second = await start_daemon(**env)
    replicas = [first, second]
    tenants = {f"rp{n}": f"56{n}:replica" for n in range(4)}
    secrets = {t: await first.create_tenant(t, token) for t, token in tenants.items()}
    census = PodCensus(cluster, list(tenants))
    census.start()
    try:
        async with TelegramSender(lambda: rng.choice(replicas)) as telegram_side:

            async def stream(tenant_id: str) -> None:
                for n in range(1, PER_TENANT + 1):
                    await telegram_side.send(
                        tenant_id, secrets[tenant_id], n, 6, f"{tenant_id}-{n}"
                    )
                    if rng.random() < 0.4:  # a retry of the same update hits the other replica
                        update = make_text_update(n, 6, f"{tenant_id}-{n}")
                        other = rng.choice(replicas)
                        status = await telegram_side.post(
                            other.router_url, tenant_id, secrets[tenant_id], update
                        )
                        assert status == 200
                    await asyncio.sleep(rng.uniform(0, 0.03))

            await asyncio.gather(*(stream(t) for t in tenants))

        await wait_all_answered(telegram, tenants, 6, PER_TENANT, REPLY_TIMEOUT)
    finally:
        await census.stop()
    assert census.peak == dict.fromkeys(tenants, 1), census.peak
    for tenant_id in tenants:  # each pod's final state sync
        status, body = await first.api("POST", f"/v1/tenants/{tenant_id}/sleep")
        assert status == 200, body
    procs = [r.proc for r in replicas if r.proc is not None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        await asyncio.gather(*(proc.wait() for proc in procs))
    for replica in replicas:
        await replica.stop()
    for tenant_id in tenants:
        assert synced_update_log(first.data_dir, tenant_id) == list(range(1, PER_TENANT + 1))
