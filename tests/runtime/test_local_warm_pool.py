"""The local warm pool with real processes: the stand-in agent (which boots unbound and
hot-reloads openclaw.json like OpenClaw), the stub model server and the fake Bot API.

Claim = restore the tenant's agent + workspace into a pre-booted gateway + one atomic config
write; the tenant's history survives, no second process is started, and the state it leaves
on sleep has the cold layout (a later cold start continues it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import shlex
import sqlite3
import sys
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest

from daemon.adapters.local import warm_pool as local_warm_pool
from daemon.adapters.local.runtime import LocalRuntime
from daemon.adapters.local.warm_bot_api import PlaceholderBotApi
from daemon.adapters.local.warm_pool import LocalWarmPool, WarmGateway
from daemon.adapters.state_dir import DirStateStore
from daemon.agent.openclaw_config import PLACEHOLDER_BOT_TOKEN
from daemon.metrics import Metrics
from daemon.wake_errors import WakeImpossible
from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from otm.devtools.stub_llm import StubLLM
from tests.support.local_runtime import local_runtime_settings, new_local_runtime
from tests.support.records import sample_launch
from tests.support.servers import telegram_and_llm

TIMEOUT = 20.0
NEW_IMAGE = "registry.example/openclaw:v2"
NEW_IMAGE_COMMAND = (sys.executable, "-X", "utf8", "-m", "otm.devtools.agent_stub")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHAT = 77
LAUNCH = sample_launch("warmtenant")


@dataclass
class Pool:
    runtime: LocalRuntime
    pool: LocalWarmPool
    telegram: FakeTelegram
    store: DirStateStore
    metrics: Metrics
    runner: asyncio.Task[None]
    llm: StubLLM

    async def fill(self, target: int = 1) -> WarmGateway:
        self.pool.target = target
        self.pool.poke()
        async with asyncio.timeout(TIMEOUT):
            await self.pool.wait_ready(target)
        return next(g for g in self.pool._gateways.values() if g.ready.is_set())

    async def say(self, url: str, update_id: int, text: str) -> str:
        before = len(self.telegram.sent(LAUNCH.bot_token))
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                url,
                json=make_text_update(update_id, CHAT, text),
                headers={SECRET_HEADER: LAUNCH.webhook_secret},
            ) as response,
        ):
            assert response.status == 200
        sent = await self.telegram.wait_for_messages(LAUNCH.bot_token, before + 1, TIMEOUT)
        return sent[-1].text


@pytest.fixture(params=["disabled", "placeholder"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pool]:
    async with telegram_and_llm() as (telegram, llm):
        settings = local_runtime_settings(
            tmp_path,
            telegram.base_url,
            env={},
            agent_model_base_url=llm.base_url,
            agent_model_id="stub-model",
            model_gateway_url=llm.base_url,
            warm_agent_telegram=request.param,
            warm_pool_refill_pause_s=0.0,
            # Locally an image is a command: the new image is the stand-in started another way.
            agent_image_commands=(f"{NEW_IMAGE}={shlex.join(NEW_IMAGE_COMMAND)}",),
        )
        session = aiohttp.ClientSession()
        runtime, store = new_local_runtime(settings, session)
        metrics = Metrics()
        runtime.metrics = metrics
        pool = runtime.warm_pool = LocalWarmPool(runtime, coordination=None, metrics=metrics)
        runner = asyncio.create_task(pool.run(), name="test-warm-pool")
        try:
            yield Pool(runtime, pool, telegram, store, metrics, runner, llm)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await pool.close()  # a test may have detached the pool from the runtime
            await runtime.close()
            await session.close()


def _snapshot_names(store: DirStateStore, tenant_id: str) -> set[str]:
    path = store.root / "tenants" / tenant_id / "snapshots" / "latest.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r:gz") as tar:
        return {m.name.lstrip("./") for m in tar.getmembers()}


async def _history_by_cold_run(setup: Pool) -> None:
    """One turn on a cold agent, then sleep: the tenant has a snapshot with history."""
    setup.runtime.warm_pool = None  # this start must be cold
    try:
        await setup.runtime.start(LAUNCH)
        instance = await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    finally:
        setup.runtime.warm_pool = setup.pool
    assert instance.webhook_url is not None
    assert await setup.say(instance.webhook_url, 1, "first") == "echo: first (prior user turns: 0)"
    await setup.runtime.stop(LAUNCH.tenant_id, grace_s=10)


def _phase_count(metrics: Metrics, phase: str, path: str) -> float:
    value = metrics.registry.get_sample_value(
        "otm_agent_start_phase_seconds_count", {"phase": phase, "path": path}
    )
    return value or 0.0


async def test_claim_binds_a_preboot_gateway_and_the_history_survives(setup: Pool) -> None:
    await _history_by_cold_run(setup)
    gateway = await setup.fill()
    assert setup.pool.status() == {"target": 1, "size": 1, "ready": 1, "booting": 0}

    # Before the bind the warm gateway refuses the tenant's secret (no "ready" by mistake).
    assert not await setup.pool._accepts_secret(gateway.webhook_url, LAUNCH.webhook_secret)

    instance = await setup.runtime.start(LAUNCH)
    assert instance.name == gateway.name  # no second process: the warm one was bound
    ready = await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    assert ready.webhook_url == gateway.webhook_url
    agent = setup.runtime._agents[LAUNCH.tenant_id]
    assert agent.proc.pid == gateway.proc.pid
    assert await setup.pool._accepts_secret(gateway.webhook_url, LAUNCH.webhook_secret)

    # The tenant's history came along (the stub model counts prior user turns).
    reply = await setup.say(gateway.webhook_url, 2, "second")
    assert reply == "echo: second (prior user turns: 1)"
    # A placeholder account talked to the pool's own Bot API only, never to "Telegram".
    assert setup.telegram.calls(PLACEHOLDER_BOT_TOKEN) == []
    # The webhook the gateway registered is the tenant's.
    hook = setup.telegram.webhooks[LAUNCH.bot_token]
    assert (hook.url, hook.secret_token) == (
        f"http://127.0.0.1:9/tg/{LAUNCH.tenant_id}",
        LAUNCH.webhook_secret,
    )
    for phase in ("claim", "restore", "config_write", "channel_up"):
        assert _phase_count(setup.metrics, phase, "warm") == 1, phase

    # Sleep: saved like a cold agent (no trace of the throw-away agent), and a cold start
    # continues from it.
    await setup.runtime.stop(LAUNCH.tenant_id, grace_s=10)
    assert not gateway.run_dir.exists()
    names = _snapshot_names(setup.store, LAUNCH.tenant_id)
    assert "agents/main/agent/stub-agent.sqlite" in names
    assert not any(n.startswith(("agents/warm", "warm-workspace")) for n in names)
    setup.pool.target = 0
    setup.pool.poke()
    setup.runtime.warm_pool = None
    await setup.runtime.start(LAUNCH)
    cold = await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    assert cold.name != gateway.name and cold.webhook_url is not None
    assert await setup.say(cold.webhook_url, 3, "third") == "echo: third (prior user turns: 2)"


async def test_a_claim_refills_the_pool(setup: Pool) -> None:
    gateway = await setup.fill()
    await setup.runtime.start(LAUNCH)
    await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    refilled = await setup.fill()
    assert refilled.name != gateway.name


async def test_a_bound_gateway_talks_to_the_api_root_of_its_launch(setup: Pool) -> None:
    """A polling tenant's launch names the daemon's Bot API relay (here a second fake)."""
    gateway = await setup.fill()
    async with FakeTelegram() as relay:
        instance = await setup.runtime.start(replace(LAUNCH, api_root=relay.base_url))
        assert instance.name == gateway.name
        await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
        assert relay.calls(LAUNCH.bot_token, "setWebhook")
        assert setup.telegram.calls(LAUNCH.bot_token) == []
        await setup.runtime.stop(LAUNCH.tenant_id, grace_s=10)


async def test_no_claim_of_a_gateway_running_another_command(setup: Pool) -> None:
    gateway = await setup.fill()
    gateway.command = ("/opt/other-image/bin/openclaw", "gateway")
    instance = await setup.runtime.start(LAUNCH)
    assert instance.name != gateway.name
    assert not gateway.claimed


async def test_pool_holds_both_images_during_a_rollout_and_recycles_the_old_one(
    setup: Pool,
) -> None:
    runtime, pool = setup.runtime, setup.pool
    old_command = runtime.command
    assert runtime.command_for(None) == old_command
    assert runtime.command_for(NEW_IMAGE) == NEW_IMAGE_COMMAND
    pool.set_image_mix({runtime.settings.agent_image: 0.5, NEW_IMAGE: 0.5})
    await setup.fill(2)
    by_command = {g.command: g for g in pool._unclaimed()}
    assert set(by_command) == {old_command, NEW_IMAGE_COMMAND}

    # A tenant moved to the new image takes the new image's gateway, not the older one.
    instance = await runtime.start(dataclasses.replace(LAUNCH, image=NEW_IMAGE))
    assert instance.name == by_command[NEW_IMAGE_COMMAND].name
    await runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    await runtime.stop(LAUNCH.tenant_id, grace_s=10)

    # Rollout done: the old image's gateway is recycled, the pool refills on the new one.
    old_gateway = by_command[old_command]
    pool.set_image_mix({NEW_IMAGE: 1.0})
    async with asyncio.timeout(TIMEOUT):
        await old_gateway.exited.wait()
        await pool.wait_ready(2)
    assert {g.command for g in pool._unclaimed()} == {NEW_IMAGE_COMMAND}

    # An image without a local command cannot run here: the wake says why, at once.
    with pytest.raises(WakeImpossible, match="no local agent command"):
        await runtime.start(dataclasses.replace(LAUNCH, image="registry.example/unknown:v9"))


async def test_unprocessed_spooled_updates_send_the_tenant_cold(setup: Pool) -> None:
    """An update the tenant's last gateway acked but never processed lives in its global
    database, which a warm gateway cannot take over: the start is cold, and it is answered."""
    await _history_by_cold_run(setup)
    staging = setup.runtime.root / "staging"
    staging.mkdir(parents=True)
    assert await setup.store.restore_snapshot(LAUNCH.tenant_id, staging)
    with sqlite3.connect(staging / "agent-stub.sqlite") as db:
        db.execute(
            "INSERT INTO updates (update_id, body, received_at) VALUES (?, ?, 0)",
            (
                9,
                '{"update_id": 9, "message": {"message_id": 9, "date": 0, "chat": {"id": 77,'
                ' "type": "private"}, "from": {"id": 77, "is_bot": false, "first_name": "T"},'
                ' "text": "spooled"}}',
            ),
        )
    await setup.store.save_snapshot(LAUNCH.tenant_id, staging)

    gateway = await setup.fill()
    instance = await setup.runtime.start(LAUNCH)
    assert instance.name != gateway.name and not gateway.claimed
    await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    sent = await setup.telegram.wait_for_messages(LAUNCH.bot_token, 2, TIMEOUT)
    assert sent[-1].text == "echo: spooled (prior user turns: 1)"


async def test_the_placeholder_bot_api_answers_only_the_placeholder_token() -> None:
    async with PlaceholderBotApi() as api, aiohttp.ClientSession() as http:
        async with http.post(f"{api.base_url}/bot{PLACEHOLDER_BOT_TOKEN}/getMe") as resp:
            body = await resp.json()
        assert resp.status == 200 and body["result"]["is_bot"] is True
        async with http.post(f"{api.base_url}/bot{PLACEHOLDER_BOT_TOKEN}/setWebhook") as resp:
            assert (await resp.json())["result"] is True
        async with http.post(f"{api.base_url}/bot{LAUNCH.bot_token}/getMe") as resp:
            assert resp.status == 401


async def test_a_bound_gateway_orphaned_by_a_daemon_crash_is_saved_like_a_cold_one(
    setup: Pool,
) -> None:
    """The next daemon's recovery finds the bound gateway through the tenant's run-dir link:
    it ends it, saves its state (the turn it took survives) and removes both dirs."""
    gateway = await setup.fill()
    await setup.runtime.start(LAUNCH)
    await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    assert await setup.say(gateway.webhook_url, 1, "one") == "echo: one (prior user turns: 0)"

    # The crashed daemon is gone: nothing of it watches the agent any more.
    crashed = setup.runtime._agents.pop(LAUNCH.tenant_id)
    for task in crashed.tasks[1:]:  # its exit watcher and readiness probe
        task.cancel()
    await asyncio.gather(*crashed.tasks[1:], return_exceptions=True)
    successor = LocalRuntime(
        settings=setup.runtime.settings,
        state_store=setup.store,
        session=setup.runtime.session,
        webhook_url_for=setup.runtime.webhook_url_for,
    )
    await successor.recover()  # the test process is no daemon: the agent counts as orphaned
    await asyncio.wait_for(gateway.exited.wait(), TIMEOUT)
    assert not gateway.run_dir.exists()
    assert not (setup.runtime.root / LAUNCH.tenant_id / gateway.name).exists()
    names = _snapshot_names(setup.store, LAUNCH.tenant_id)
    assert "agents/main/agent/stub-agent.sqlite" in names
    assert not any(n.startswith(("agents/warm", "warm-workspace")) for n in names)


async def test_a_warm_up_turn_runs_on_the_throwaway_agent_only(setup: Pool) -> None:
    """``warm_pool_warmup: turn``: one model call before the gateway counts as ready, on the
    agent ``warm``; the tenant bound later sees none of it."""
    setup.pool.settings = dataclasses.replace(setup.pool.settings, warm_pool_warmup="turn")
    gateway = await setup.fill()
    [warm_up] = setup.llm.requests
    assert warm_up.messages[-1]["content"] == "warm-up"
    assert setup.telegram.sent() == []  # nothing delivered

    await setup.runtime.start(LAUNCH)
    await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    assert await setup.say(gateway.webhook_url, 1, "hi") == "echo: hi (prior user turns: 0)"


@pytest.mark.parametrize("step", ["_move_carried", "_write_atomically"])
async def test_a_claim_failing_half_way_loses_nothing_and_leaves_nothing(
    setup: Pool, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A claim that fails after the restore or at the config write: the half-bound gateway
    (it may hold tenant files) is stopped and removed, the tenant's snapshot is untouched,
    and the next start works (cold here) with the history."""
    await _history_by_cold_run(setup)
    before = _snapshot_names(setup.store, LAUNCH.tenant_id)
    gateway = await setup.fill()

    def fail(*args: object) -> None:
        raise OSError(f"injected failure in {step}")

    monkeypatch.setattr(local_warm_pool, step, fail)
    setup.pool.target = 0  # no refill: the next start must be cold
    with pytest.raises(OSError, match="injected"):
        await setup.runtime.start(LAUNCH)
    await asyncio.wait_for(gateway.exited.wait(), TIMEOUT)
    assert not gateway.run_dir.exists()
    assert setup.pool.status()["size"] == 0
    assert _snapshot_names(setup.store, LAUNCH.tenant_id) == before

    monkeypatch.undo()
    instance = await setup.runtime.start(LAUNCH)
    assert instance.name != gateway.name
    ready = await setup.runtime.wait_ready(LAUNCH.tenant_id, TIMEOUT)
    assert ready.webhook_url is not None
    assert await setup.say(ready.webhook_url, 2, "again") == "echo: again (prior user turns: 1)"
