"""Fleet image rollouts through a real daemon with stand-in agents.

Locally an image is a command (setting ``agent_image_commands``): the new image here is the
stand-in agent started another way (``python -X utf8 -m ...``), so state written on the old
image must be read back on the new one; the failing image is a command that exits at once.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from daemon.msgpath.wake import STARTING_NOTICE
from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

NEW = "registry.example/openclaw:v2"
BAD = "registry.example/openclaw:broken"
TENANTS = ["ra", "rb", "rc", "rd"]
TIMEOUT = 60.0


def image_commands(**commands: list[str]) -> str:
    entries = [f"{image}={shlex.join(words)}" for image, words in commands.items()]
    return shlex.join(entries)


def stub(*python_flags: str) -> list[str]:
    return [sys.executable, *python_flags, "-m", "otm.devtools.agent_stub"]


async def rollout(daemon: Daemon) -> dict[str, Any]:
    status, body = await daemon.api("GET", "/v1/rollout")
    assert status == 200, body
    return dict(body["rollout"])


async def images(daemon: Daemon) -> dict[str, str | None]:
    return {t: (await daemon.tenant(t))["image"] for t in TENANTS}


def echoes(telegram: FakeTelegram, token: str) -> list[str]:
    return [m.text for m in telegram.sent(token, 1) if m.text != STARTING_NOTICE]


async def converse(
    daemon: Daemon, telegram: FakeTelegram, secrets: dict[str, str], tenant: str, n: int
) -> None:
    """Message ``n`` to the tenant; wait for its reply (its agent counts messages: state)."""
    await daemon.send_text(tenant, secrets[tenant], 100 + n, 1, f"m{n}")
    token = f"77{TENANTS.index(tenant)}:{tenant}"

    def replied() -> bool:
        return f"echo: m{n} (#{n})" in echoes(telegram, token)

    await eventually(replied, TIMEOUT, f"reply #{n} from {tenant}", interval=0.1)


async def test_rollout_passes_its_gate_wave_by_wave(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon(
        OTM_AGENT_IMAGE_COMMANDS=image_commands(**{NEW: stub("-X", "utf8")}),
        OTM_ROLLOUT_TICK_S="0.2",
    )
    secrets = {t: await daemon.create_tenant(t, f"77{i}:{t}") for i, t in enumerate(TENANTS)}
    for tenant in TENANTS:  # state on the old image: message #1
        await converse(daemon, telegram, secrets, tenant, 1)
    for tenant in TENANTS[1:]:
        assert (await daemon.api("POST", f"/v1/tenants/{tenant}/sleep"))[0] == 200
    running = TENANTS[0]  # keeps its agent (and image) until it sleeps

    status, body = await daemon.api(
        "POST", "/v1/rollout", json={"image": NEW, "steps": "25%,50%,100%", "pause_s": 0}
    )
    assert status == 201, body
    assert body["rollout"]["status"] == "running"
    status, body = await daemon.api("POST", "/v1/rollout", json={"image": NEW})
    assert status == 409, body  # one rollout at a time

    seen_waves: list[int] = []
    talked = {running}
    while (current := await rollout(daemon))["status"] == "running":
        if current["wave_number"] not in seen_waves:
            seen_waves.append(current["wave_number"])
        moved = {t for t, image in (await images(daemon)).items() if image == NEW}
        assert running not in moved, "a running tenant's image changed under its agent"
        for tenant in sorted(moved - talked):
            await converse(daemon, telegram, secrets, tenant, 2)  # a wake on the new image
            talked.add(tenant)
        if moved == set(TENANTS) - {running}:
            # The last wave waits for the running tenant: it moves once it sleeps.
            assert current["wave_number"] == 3
            assert "still running the old image" in current["reason"]
            assert (await daemon.api("POST", f"/v1/tenants/{running}/sleep"))[0] == 200
            await eventually(
                lambda: _image_is(daemon, running, NEW), TIMEOUT, "running tenant moved"
            )
            await converse(daemon, telegram, secrets, running, 2)
        await _next_change(daemon, current)

    assert current["status"] == "completed", current
    assert seen_waves == [1, 2, 3]
    assert await images(daemon) == dict.fromkeys(TENANTS, NEW)
    assert current["health"]["new"]["wakes_failed"] == 0
    assert current["health"]["new"]["wakes_ok"] >= 1
    for i, tenant in enumerate(TENANTS):
        # The second message counted #2 on the new image: the state came along.
        assert echoes(telegram, f"77{i}:{tenant}") == ["echo: m1 (#1)", "echo: m2 (#2)"]
        log = (daemon.data_dir / "agents" / tenant / "agent.log").read_text()
        assert f"image {NEW})" in log


async def _image_is(daemon: Daemon, tenant: str, image: str) -> bool:
    return (await daemon.tenant(tenant))["image"] == image


async def _next_change(daemon: Daemon, current: dict[str, Any]) -> None:
    """Until the rollout's wave, status or moved count changes (bounded)."""

    async def changed() -> bool:
        now = await rollout(daemon)
        keys = ("status", "wave", "moved")
        return any(now[k] != current[k] for k in keys)

    await eventually(changed, TIMEOUT, "the rollout to move on", interval=0.1)


async def test_rollout_rolls_back_when_the_new_image_fails_its_wakes(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    exits = [sys.executable, "-c", "import sys; sys.exit(3)"]
    daemon = await start_daemon(
        OTM_AGENT_IMAGE_COMMANDS=image_commands(**{BAD: exits}),
        OTM_ROLLOUT_TICK_S="0.2",
    )
    secrets = {t: await daemon.create_tenant(t, f"77{i}:{t}") for i, t in enumerate(TENANTS)}
    # One failed wake fails a tenant: the rollback must make it wakeable again.
    assert (await daemon.api("PATCH", "/v1/config", json={"max_wake_attempts": 1}))[0] == 200
    status, body = await daemon.api(
        "POST",
        "/v1/rollout",
        json={"image": BAD, "steps": "50%,100%", "gate": {"min_failures": 2}},
    )
    assert status == 201, body
    await eventually(lambda: _moved_count(daemon, 2), TIMEOUT, "the first wave's two tenants moved")
    moved = [t for t, image in (await images(daemon)).items() if image == BAD]
    for tenant in moved:  # their wakes fail: the agent exits at once
        await daemon.send_text(tenant, secrets[tenant], 201, 1, "hello")

    async def rolled_back() -> bool:
        return (await rollout(daemon))["status"] == "rolled_back"

    await eventually(rolled_back, TIMEOUT, "the automatic rollback", interval=0.1)
    final = await rollout(daemon)
    assert final["wave_number"] == 1, "the failing wave must not have advanced"
    assert "gate failed in wave 1" in final["reason"]
    assert final["health"]["new"]["wakes_failed"] >= 2
    assert await images(daemon) == dict.fromkeys(TENANTS)
    # The buffered messages are delivered on the old image once the tenants are back.
    for tenant in moved:
        token = f"77{TENANTS.index(tenant)}:{tenant}"

        def delivered(token: str = token) -> bool:
            return "echo: hello (#1)" in echoes(telegram, token)

        await eventually(delivered, TIMEOUT, f"{tenant}'s held message", interval=0.1)
        assert (await daemon.tenant(tenant))["status"] == "running"
        # It had failed on the new image; the rollback made it wakeable again.
        status, events = await daemon.api("GET", f"/v1/tenants/{tenant}/events")
        kinds = [e["kind"] for e in events["items"]]
        assert "failed" in kinds and "resumed" in kinds, kinds
    # A finished rollout cannot be paused; a new one may start.
    status, body = await daemon.api("POST", "/v1/rollout/pause")
    assert status == 409, body


async def _moved_count(daemon: Daemon, count: int) -> bool:
    return (await rollout(daemon))["moved"] == count


async def test_rollout_rolls_back_when_the_new_image_answers_5xx(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    """Wakes on the new image succeed, its agent answers every update 500: rolled back on the
    agent 5xx count. Running tenants move back only once their agent stops (suspended here)."""
    broken = [sys.executable, "-m", "tests.support.agent_5xx"]
    daemon = await start_daemon(
        OTM_AGENT_IMAGE_COMMANDS=image_commands(**{BAD: broken}),
        OTM_ROLLOUT_TICK_S="0.2",
    )
    secrets = {t: await daemon.create_tenant(t, f"77{i}:{t}") for i, t in enumerate(TENANTS)}
    # A long pause: the wave's first healthy wake alone must not let it pass.
    body = {"image": BAD, "steps": "50%,100%", "pause_s": 600}
    status, body = await daemon.api("POST", "/v1/rollout", json=body)
    assert status == 201, body
    await eventually(lambda: _moved_count(daemon, 2), TIMEOUT, "the first wave moved")
    moved = [t for t, image in (await images(daemon)).items() if image == BAD]
    for tenant in moved:
        await daemon.send_text(tenant, secrets[tenant], 301, 1, "hello")

    async def rolling_back() -> bool:
        return (await rollout(daemon))["status"] == "rolling_back"

    await eventually(rolling_back, TIMEOUT, "the automatic rollback", interval=0.1)
    current = await rollout(daemon)
    assert current["health"]["new"]["wakes_ok"] == 2
    assert current["health"]["new"]["agent_5xx"] >= 2
    assert current["health"]["new"]["wakes_failed"] == 0
    # Their agents still run: the rollback waits for them (no turn is cut).
    assert await images(daemon) == {t: BAD if t in moved else None for t in TENANTS}
    for tenant in moved:
        assert (await daemon.api("POST", f"/v1/tenants/{tenant}/suspend"))[0] == 200

    async def rolled_back() -> bool:
        return (await rollout(daemon))["status"] == "rolled_back"

    await eventually(rolled_back, TIMEOUT, "every moved tenant back", interval=0.1)
    assert await images(daemon) == dict.fromkeys(TENANTS)
    for tenant in moved:
        assert (await daemon.api("POST", f"/v1/tenants/{tenant}/resume"))[0] == 200
        token = f"77{TENANTS.index(tenant)}:{tenant}"

        def delivered(token: str = token) -> bool:
            return "echo: hello (#1)" in echoes(telegram, token)

        await eventually(delivered, TIMEOUT, f"{tenant}'s retried message", interval=0.1)
