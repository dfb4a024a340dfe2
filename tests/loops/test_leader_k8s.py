"""Kubernetes Lease leader election against the fake apiserver (real HTTP,
kubernetes_asyncio through a kubeconfig), two electors = two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from daemon.kube.names import LEADER_LEASE
from daemon.lifecycle.leader import KubernetesLease, LeaderElector, micro_time_now
from daemon.metrics import Metrics
from daemon.settings import load_settings
from tests.loops.loop_support import stop_tasks
from tests.support.daemon_rbac import daemon_rbac_options
from tests.support.fake_k8s.fixture import FakeK8s, running_fake_k8s
from tests.support.polling import eventually

LEASE_S = 2.0
NAMESPACE = "otm-system"


@pytest.fixture
async def k8s(tmp_path: Path) -> AsyncIterator[FakeK8s]:
    async with running_fake_k8s(
        tmp_path, kubelet=False, namespaces=("default", NAMESPACE), **daemon_rbac_options()
    ) as k:
        yield k


class Replica:
    def __init__(self, lease: KubernetesLease) -> None:
        self.lease = lease
        self.elector = LeaderElector(lease, lease_s=LEASE_S, metrics=Metrics())
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run())

    async def crash(self) -> None:
        """Stop renewing without releasing (a SIGKILLed replica)."""
        if self.task is not None:
            await stop_tasks(self.task)
            self.task = None


@pytest.fixture
async def replicas(k8s: FakeK8s) -> AsyncIterator[list[Replica]]:
    settings = load_settings(
        flags={"runtime": "kubernetes", "kubeconfig": str(k8s.kubeconfig_path)}, env={}
    )
    pair: list[Replica] = []
    try:
        for name in ("replica-a", "replica-b"):
            lease = await KubernetesLease.open(settings, identity=name, lease_s=LEASE_S)
            pair.append(Replica(lease))
        yield pair
    finally:
        for replica in pair:
            await replica.crash()
            await replica.lease.close()


async def read_lease(k8s: FakeK8s) -> client.V1Lease:
    async with k8s.api_client() as api:
        return await client.CoordinationV1Api(api).read_namespaced_lease(LEADER_LEASE, NAMESPACE)


def leaders(replicas: list[Replica]) -> list[Replica]:
    return [r for r in replicas if r.elector.is_leader]


async def test_one_leads_and_the_other_takes_over_after_a_crash(
    k8s: FakeK8s, replicas: list[Replica]
) -> None:
    for replica in replicas:
        replica.start()
    await eventually(lambda: len(leaders(replicas)) == 1, timeout=LEASE_S * 3, what="a leader")
    old = leaders(replicas)[0]
    new = next(r for r in replicas if r is not old)
    lease = await read_lease(k8s)
    assert lease.spec.holder_identity == old.elector.identity
    assert lease.spec.lease_duration_seconds == int(LEASE_S)
    # Renewals keep it: a lease time later nothing changed hands.
    await asyncio.sleep(LEASE_S)
    assert leaders(replicas) == [old]
    assert (await read_lease(k8s)).spec.renew_time > lease.spec.renew_time

    await old.crash()
    await eventually(lambda: new.elector.is_leader, timeout=LEASE_S * 4, what="takeover")
    taken = await read_lease(k8s)
    assert taken.spec.holder_identity == new.elector.identity
    assert taken.spec.lease_transitions == (lease.spec.lease_transitions or 0) + 1


async def test_release_hands_over_without_waiting(k8s: FakeK8s, replicas: list[Replica]) -> None:
    a, b = replicas
    a.start()
    await eventually(lambda: a.elector.is_leader, timeout=LEASE_S * 3, what="a leads")
    b.start()
    await asyncio.sleep(0.5)  # b has seen a's lease and waits for it to expire
    await a.crash()
    await a.elector.release()
    assert not (await read_lease(k8s)).spec.holder_identity
    # b takes it at its next retry, well before a lease duration from its last observation.
    await eventually(lambda: b.elector.is_leader, timeout=LEASE_S * 3, what="b leads")


async def test_apiserver_errors_make_the_leader_step_down_and_rejoin(
    k8s: FakeK8s, replicas: list[Replica]
) -> None:
    a = replicas[0]
    changes: list[bool] = []
    a.elector.on_change(changes.append)
    a.start()
    await eventually(lambda: a.elector.is_leader, timeout=LEASE_S * 3, what="a leads")
    # Renewal reads fail: the leader must not go on believing it leads.
    k8s.server.inject_fault(500, count=3, path_contains="/leases/")
    await eventually(lambda: not a.elector.is_leader, timeout=LEASE_S * 3, what="step down")
    # The apiserver recovers; the lease is still ours, so a takes it straight back.
    await eventually(lambda: a.elector.is_leader, timeout=LEASE_S * 3, what="re-elected")
    assert changes[:3] == [True, False, True]


async def test_racing_candidates_for_an_expired_lease_cannot_both_win(
    k8s: FakeK8s, replicas: list[Replica]
) -> None:
    async with k8s.api_client() as api:
        await client.CoordinationV1Api(api).create_namespaced_lease(
            NAMESPACE,
            client.V1Lease(
                metadata=client.V1ObjectMeta(name=LEADER_LEASE),
                spec=client.V1LeaseSpec(holder_identity="gone", lease_duration_seconds=1),
            ),
        )
    a, b = (r.lease for r in replicas)
    # First sight of a held lease: both must wait its duration out on their own clocks.
    assert await a.try_acquire() is False
    assert await b.try_acquire() is False
    await asyncio.sleep(1.2)
    results = await asyncio.gather(a.try_acquire(), b.try_acquire())
    assert sorted(results) == [False, True]
    winner = a if results[0] else b
    assert (await read_lease(k8s)).spec.holder_identity == winner.identity
    loser = b if winner is a else a
    assert await loser.renew() is False


async def test_lease_times_are_sent_as_micro_times(k8s: FakeK8s) -> None:
    """kubernetes_asyncio sends ``isoformat()``: a whole-second datetime loses its fraction
    and the apiserver refuses the Lease (400); the elector's clock never sends one."""
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with k8s.api_client() as api:
        coordination = client.CoordinationV1Api(api)
        spec = client.V1LeaseSpec(holder_identity="a", renew_time=whole_second)
        lease = client.V1Lease(metadata=client.V1ObjectMeta(name="whole"), spec=spec)
        with pytest.raises(client.ApiException) as refused:
            await coordination.create_namespaced_lease(NAMESPACE, lease)
        assert refused.value.status == 400
        spec.renew_time = micro_time_now(whole_second)
        created = await coordination.create_namespaced_lease(NAMESPACE, lease)
        assert created.spec.renew_time == micro_time_now(whole_second)
