"""The Runtime port's contract, run against every adapter (see conftest.RUNTIME_FACTORIES)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from daemon.ports import AgentFailed, InstanceEvent, InstancePhase
from daemon.telegram import SECRET_HEADER
from otm.devtools.fake_telegram import make_text_update
from tests.support.runtime_harness import RuntimeHarness

READY_TIMEOUT = 20.0


async def next_event(
    events: AsyncIterator[InstanceEvent], want: InstancePhase, timeout: float = READY_TIMEOUT
) -> InstanceEvent:
    async with asyncio.timeout(timeout):
        async for event in events:
            if event.instance.phase == want:
                return event
    raise AssertionError(f"watch ended before an instance reached {want}")


async def wait_idle(harness: RuntimeHarness, tenant_id: str) -> None:
    """Until the agent reports no pending turn (bounded; activity is a query, not an event)."""
    async with asyncio.timeout(READY_TIMEOUT):
        while True:
            activity = await harness.runtime.activity(tenant_id)
            if activity is not None and activity.pending_turns == 0:
                return
            await asyncio.sleep(0.05)


async def post_update(url: str, secret: str, update_id: int, text: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json=make_text_update(update_id, 1, text), headers={SECRET_HEADER: secret}
        ) as resp,
    ):
        return resp.status


async def test_start_wait_ready_get_list_and_idempotent_start(harness: RuntimeHarness) -> None:
    runtime = harness.runtime
    launch = harness.launch("alpha")
    assert await runtime.get("alpha") is None
    started = await runtime.start(launch)
    assert started.tenant_id == "alpha"
    assert started.phase in (InstancePhase.PENDING, InstancePhase.READY)
    ready = await runtime.wait_ready("alpha", READY_TIMEOUT)
    assert ready.phase == InstancePhase.READY
    assert ready.name == started.name
    assert ready.webhook_url and ready.gateway_url
    again = await runtime.start(launch)
    assert again.name == started.name
    assert await runtime.get("alpha") == ready
    assert [i.name for i in await runtime.list()] == [started.name]


async def test_watch_reports_ready_and_stop_then_stop_is_idempotent(
    harness: RuntimeHarness,
) -> None:
    runtime = harness.runtime
    events = runtime.watch()
    # Start consuming before the change, as a reconciler does.
    ready_event = asyncio.create_task(next_event(events, InstancePhase.READY))
    await asyncio.sleep(0)
    await runtime.start(harness.launch("beta"))
    event = await ready_event
    assert event.instance.tenant_id == "beta"
    await runtime.stop("beta", grace_s=10)
    gone = await next_event(events, InstancePhase.GONE)
    assert gone.kind == "deleted" and gone.instance.tenant_id == "beta"
    assert await runtime.get("beta") is None
    await runtime.stop("beta", grace_s=10)
    await runtime.stop("never-started", grace_s=10)
    await events.aclose()  # type: ignore[attr-defined]


async def test_agent_serves_webhook_and_state_survives_stop(harness: RuntimeHarness) -> None:
    if not harness.reachable:
        pytest.skip("this adapter's agents are not reachable from the test")
    runtime, telegram = harness.runtime, harness.telegram
    launch = harness.launch("gamma", bot_id=5151)
    instance = await runtime.start(launch)
    instance = await runtime.wait_ready("gamma", READY_TIMEOUT)
    assert instance.webhook_url is not None
    assert await post_update(instance.webhook_url, "wrong", 1, "x") == 401
    assert await post_update(instance.webhook_url, launch.webhook_secret, 1, "one") == 200
    await telegram.wait_for_messages("5151:contract", 1, READY_TIMEOUT)
    activity = await runtime.activity("gamma")
    assert activity is not None and activity.pending_turns >= 0
    await runtime.stop("gamma", grace_s=10)
    assert await harness.state_store.list("gamma") != []

    await runtime.start(launch)
    instance = await runtime.wait_ready("gamma", READY_TIMEOUT)
    assert instance.webhook_url is not None
    assert await post_update(instance.webhook_url, launch.webhook_secret, 2, "two") == 200
    sent = await telegram.wait_for_messages("5151:contract", 2, READY_TIMEOUT)
    assert [m.text for m in sent] == ["echo: one (#1)", "echo: two (#2)"]


async def test_crash_is_reported_and_state_kept(harness: RuntimeHarness) -> None:
    if harness.crash is None or not harness.reachable:
        pytest.skip("this adapter cannot inject an agent crash")
    runtime, telegram = harness.runtime, harness.telegram
    launch = harness.launch("delta", bot_id=6161)
    await runtime.start(launch)
    instance = await runtime.wait_ready("delta", READY_TIMEOUT)
    assert instance.webhook_url is not None
    assert await post_update(instance.webhook_url, launch.webhook_secret, 1, "pre") == 200
    await telegram.wait_for_messages("6161:contract", 1, READY_TIMEOUT)
    await wait_idle(harness, "delta")  # the turn is recorded as done, not only replied
    events = runtime.watch()
    failed_event = asyncio.create_task(next_event(events, InstancePhase.FAILED))
    await asyncio.sleep(0)
    await harness.crash("delta")
    failed = await failed_event
    assert failed.kind == "deleted" and failed.instance.tenant_id == "delta"
    assert await runtime.get("delta") is None
    await events.aclose()  # type: ignore[attr-defined]

    await runtime.start(launch)
    instance = await runtime.wait_ready("delta", READY_TIMEOUT)
    assert instance.webhook_url is not None
    assert await post_update(instance.webhook_url, launch.webhook_secret, 2, "post") == 200
    sent = await telegram.wait_for_messages("6161:contract", 2, READY_TIMEOUT)
    assert [m.text for m in sent] == ["echo: pre (#1)", "echo: post (#2)"]


async def test_wait_ready_times_out_and_fails_for_unknown(harness: RuntimeHarness) -> None:
    runtime = harness.runtime
    with pytest.raises(AgentFailed):
        await runtime.wait_ready("nobody", 1.0)
    # The stand-in agent honours a simulated boot time (ignored by other agents).
    harness.set_agent_env("OTM_AGENT_BOOT_DELAY_S", "30")
    await runtime.start(harness.launch("slow"))
    with pytest.raises(TimeoutError):
        await runtime.wait_ready("slow", 0.3)
    await runtime.stop("slow", grace_s=10)
    assert await runtime.get("slow") is None


async def test_logs_history_follow_and_unknown(harness: RuntimeHarness) -> None:
    runtime = harness.runtime
    with pytest.raises(KeyError):
        async for _ in runtime.logs("nobody", follow=False, since_s=None):
            pass
    await runtime.start(harness.launch("epsilon"))
    await runtime.wait_ready("epsilon", READY_TIMEOUT)
    history = [line async for line in runtime.logs("epsilon", follow=False, since_s=None)]
    assert history, "a started agent has log lines"
    recent = [line async for line in runtime.logs("epsilon", follow=False, since_s=3600)]
    assert recent == history

    async def follow() -> list[str]:
        return [line async for line in runtime.logs("epsilon", follow=True, since_s=None)]

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    await runtime.stop("epsilon", grace_s=10)
    # Following ends when the agent exits, with the shutdown lines included.
    async with asyncio.timeout(READY_TIMEOUT):
        followed = await follower
    assert len(followed) > len(history)
