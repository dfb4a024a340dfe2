"""Point-in-time restore of a Kubernetes agent through a real daemon (runtime=kubernetes,
state_store=s3 on moto) whose pods run as processes: each sleep packs the synced
``state/`` and ``workspace/`` keys into a history entry; restoring an older one rewrites
those keys (files back, keys not in it deleted) and the next wake's restore brings the
older agent state back (the stand-in's persisted turn counter shows in its echoes)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from daemon.adapters.state_s3 import S3StateStore
from daemon.ports import StateStore
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.e2e.test_restore import BOT, converse, sleep, snapshots
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.fake_cluster import cluster_running_agents, kubernetes_daemon_env
from tests.support.fake_k8s.fixture import FakeK8s

BUCKET = "k8s-restore"
REGION = "us-east-1"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node for the bootstrap")


@pytest_asyncio.fixture
async def s3_store(moto_url: str) -> S3StateStore:
    return await S3StateStore.open(bucket=BUCKET, region=REGION, endpoint_url=moto_url)


@pytest_asyncio.fixture
async def cluster(tmp_path: Path, data_dir: Path, s3_store: S3StateStore) -> AsyncIterator[FakeK8s]:
    async with cluster_running_agents(tmp_path, data_dir, state_store=s3_store) as k8s:
        yield k8s


@pytest_asyncio.fixture
async def daemon(cluster: FakeK8s, start_daemon: DaemonFactory, moto_url: str) -> Daemon:
    return await start_daemon(
        **kubernetes_daemon_env(cluster),
        OTM_STATE_STORE="s3",
        OTM_S3_ENDPOINT_URL=moto_url,
        OTM_S3_BUCKET=BUCKET,
        OTM_AWS_REGION=REGION,
    )


def _content(data: bytes, scratch: Path) -> bytes | list[str]:
    """A database as its rows (a snapshot holds a consistent copy, not the same bytes)."""
    if not data.startswith(b"SQLite format 3\x00"):
        return data
    copy = scratch / "copy.sqlite"
    copy.write_bytes(data)
    conn = sqlite3.connect(copy)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
        copy.unlink()


async def tree(store: StateStore, tenant_id: str, scratch: Path) -> dict[str, object]:
    keys = await store.list(tenant_id, "state/") + await store.list(tenant_id, "workspace/")
    return {key: _content(await store.get(tenant_id, key), scratch) for key in keys}


async def test_restore_brings_an_older_synced_tree_back(
    daemon: Daemon, telegram: FakeTelegram, s3_store: S3StateStore, tmp_path: Path
) -> None:
    secret = await daemon.create_tenant("pitr", BOT)
    assert await converse(daemon, telegram, "pitr", secret, 1, "first") == "echo: first (#1)"
    await sleep(daemon, "pitr")
    [after_one] = await snapshots(daemon, "pitr")
    assert after_one["trigger"] == "sleep" and after_one["size"] > 0
    tree_after_one = await tree(s3_store, "pitr", tmp_path)
    assert tree_after_one  # the final sync left the agent's files

    # Written while asleep: the next wake brings it into the pod, its sync keeps it.
    await s3_store.put("pitr", "workspace/later.md", b"not in the first snapshot")
    assert await converse(daemon, telegram, "pitr", secret, 2, "second") == "echo: second (#2)"
    assert await converse(daemon, telegram, "pitr", secret, 3, "third") == "echo: third (#3)"
    await sleep(daemon, "pitr")
    assert len(await snapshots(daemon, "pitr")) == 2
    assert "workspace/later.md" in await tree(s3_store, "pitr", tmp_path)

    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"snapshot": "snapshots/history/nope.tar.gz"}
    )
    assert status == 404, body

    status, body = await daemon.api(
        "POST", "/v1/tenants/pitr/restore", json={"snapshot": after_one["key"]}
    )
    assert status == 200, body
    assert body["restored"]["key"] == after_one["key"]
    assert body["tenant"]["status"] == "running"
    # The pod syncs at its sleep only (process backend): the tree is the first snapshot's.
    assert await tree(s3_store, "pitr", tmp_path) == tree_after_one
    assert await converse(daemon, telegram, "pitr", secret, 4, "again") == "echo: again (#2)"
    history = await snapshots(daemon, "pitr")
    assert [s["trigger"] for s in history] == ["restore", "sleep", "sleep"]

    # Asleep again: the synced tree is the first snapshot's, plus what turn #2 changed.
    await sleep(daemon, "pitr")
    restored_tree = await tree(s3_store, "pitr", tmp_path)
    assert "workspace/later.md" not in restored_tree
    assert restored_tree.keys() == tree_after_one.keys()
