"""A message through otm's router to a real OpenClaw gateway, and its reply at the fake Bot API.

The daemon (``python -m daemon``, local runtime) runs the pinned gateway from
``scripts/install-openclaw.sh`` as its agent command, with the stub LLM as the model server
(``OTM_AGENT_MODEL_BASE_URL``) behind the daemon's model gateway: the gateway's openclaw.json
names the model gateway with the tenant's own key (never the stub's key), and every token the
stub reported is counted for the tenant. The test only talks to what Telegram would talk to
(the router's ``/tg/{tenant}``) and to the admin API; the reply is what the gateway sent to the
fake Bot API. Then the tenant is slept while a turn is in flight (SIGTERM: the gateway drains
the turn, exits 0, the final state sync follows) and the next message wakes it again: the stub
LLM's turn counter shows the conversation history survived.

Needs ``.tools/openclaw``; skipped otherwise. Run alone: ``pytest -m openclaw tests/openclaw -s``
(prints the timings). Two gateway boots of 30-65 s each on a 2-core machine, plus two turns of
15-30 s: about 2-3 minutes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from daemon.adapters.local.runtime import PID_FILE
from tests.e2e.harness import Daemon, end_orphan_agents
from tests.support.openclaw import (
    BOOT_TIMEOUT_S,
    TURN_TIMEOUT_S,
    EchoChat,
    openclaw_tier_marks,
    real_gateway_env,
    wait_for_tenant_status,
)
from tests.support.polling import eventually
from tests.support.servers import telegram_and_llm

# Two boots (up to ~65 s each under load) + two turns (up to ~30 s) + drains + daemon.
pytestmark = openclaw_tier_marks()

TENANT = "ocr1"
BOT_TOKEN = "5151:fake-openclaw-router-token"
CHAT = 222
SLOW_MODEL_S = 6.0
"""How long the stub model holds the answer that is in flight when the tenant is slept."""


def _process_group(pgid: int) -> set[int]:
    """Live (non-zombie) processes of the process group ``pgid``, from /proc."""
    members: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(stat.parent.name))
    return members


def _agent_group(data_dir: Path) -> tuple[int, set[int]]:
    """The running gateway's pid (its own process group: start_new_session) and its members."""
    [pid_file] = (data_dir / "agents" / TENANT).glob(f"*/{PID_FILE}")
    pgid = int(pid_file.read_text().split()[0])
    return pgid, _process_group(pgid)


def _stop_lines(data_dir: Path) -> list[str]:
    log = (data_dir / "agents" / TENANT / "agent.log").read_text(errors="replace")
    return [line for line in log.splitlines() if " stopped: agent exited with code " in line]


async def test_router_wakes_a_real_gateway_which_answers_and_keeps_history_across_sleep(
    own_redis: str, data_dir: Path
) -> None:
    timings: dict[str, float] = {}
    clock = time.monotonic
    async with telegram_and_llm() as (telegram, llm):
        daemon = Daemon(
            data_dir,
            own_redis,
            telegram,
            **real_gateway_env(llm.base_url, BOOT_TIMEOUT_S),
        )
        chat = EchoChat(telegram, BOT_TOKEN, CHAT, daemon.log_tail)
        pgid: int | None = None
        try:
            await daemon.start()
            secret = await daemon.create_tenant(TENANT, BOT_TOKEN)

            async def wake_and_reply(how: str, update_id: int, text: str, nth: int) -> str:
                """Send ``text`` to the sleeping tenant; the ``nth`` reply, timed."""
                posted = clock()
                await daemon.send_text(TENANT, secret, update_id, CHAT, text)
                await wait_for_tenant_status(daemon, TENANT, "running")
                timings[f"post to ready ({how})"] = clock() - posted
                ready = clock()
                reply = await chat.reply(nth)
                timings[f"ready to reply ({how})"] = clock() - ready
                # OpenClaw wraps the text in context (time, session); the stub echoes it all.
                assert reply.startswith("echo: ") and text in reply
                return reply

            # 1. Telegram → router → buffer → cold wake → gateway → stub LLM → fake Bot API.
            first = await wake_and_reply("cold boot", 7001, "hello through the router", 1)
            assert first.endswith("(prior user turns: 0)")
            # OpenClaw called the model gateway with its tenant key; the gateway called the
            # model with the configured model id and the daemon's key.
            assert llm.requests
            assert all(r.had_authorization and r.model == "stub-model" for r in llm.requests)
            [config_path] = (data_dir / "agents" / TENANT).glob("*/openclaw.json")
            provider = json.loads(config_path.read_text())["models"]["providers"]["otm"]
            assert provider["baseUrl"] == daemon.model_gateway_url
            assert provider["apiKey"].startswith(f"otm-mk-{TENANT}.")
            assert "stub-model-key" not in config_path.read_text()
            # It registered the router's URL with the secret the daemon rendered for it.
            hook = telegram.webhooks[BOT_TOKEN]
            assert (hook.url, hook.secret_token) == (f"http://127.0.0.1:9/tg/{TENANT}", secret)
            # A wrong secret is refused by the router, without reaching the gateway.
            assert await daemon.post_update(TENANT, "wrong", {"update_id": 7002}) == 401

            # 2. Sleep with a turn in flight (a slow model): the gateway drains it, so the
            # reply still arrives, then exits 0 with no process left; the state is saved.
            llm.delay_s = SLOW_MODEL_S
            asked = len(llm.requests)
            await daemon.send_text(TENANT, secret, 7003, CHAT, "a slow question")
            await llm.wait_for_requests(asked + 1, timeout=TURN_TIMEOUT_S)
            pgid, members = _agent_group(data_dir)
            assert pgid in members
            print(f"\ngateway process group while running: {len(members)} processes")
            stopping = clock()
            status, body = await daemon.api("POST", f"/v1/tenants/{TENANT}/sleep")
            timings[f"sleep with a {SLOW_MODEL_S:.0f}s turn in flight"] = clock() - stopping
            assert status == 200, body
            assert body["status"] == "idle"
            drained = chat.replies()
            assert len(drained) == 2, drained
            assert "a slow question" in drained[1]
            assert drained[1].endswith("(prior user turns: 1)")
            assert _process_group(pgid) == set(), f"left behind: {_process_group(pgid)}"
            assert _stop_lines(data_dir)[-1].endswith("exited with code 0"), _stop_lines(data_dir)
            llm.delay_s = 0.0
            snapshots = data_dir / "state" / "tenants" / TENANT / "snapshots"
            assert (snapshots / "latest.tar.gz").is_file()

            # 3. The next message wakes a new gateway on the restored state: history survived.
            third = await wake_and_reply("restored state", 7004, "and again after sleep", 3)
            assert third.endswith("(prior user turns: 2)")
            assert len(chat.replies()) == 3  # nothing was replayed
            pgid, _ = _agent_group(data_dir)

            # 4. Usage: exactly what the model reported, for every request it answered.
            expected = llm.reported_usage()

            async def counted() -> bool:
                status, body = await daemon.api("GET", f"/v1/usage?since=1h&tenant={TENANT}")
                assert status == 200, body
                item = body["items"][0]
                return bool(item["requests"] >= expected["requests"])

            await eventually(counted, 10, "usage counted")
            status, body = await daemon.api("GET", f"/v1/usage?since=1h&tenant={TENANT}")
            item = body["items"][0]
            assert {k: item[k] for k in expected} == expected
            print(f"usage through the model gateway: {expected}")
        finally:
            stopping = clock()
            await daemon.stop(timeout=90)
            timings["daemon stop (drains the gateway)"] = clock() - stopping
            end_orphan_agents(data_dir)
            print("\nopenclaw through the router:")
            for label, seconds in timings.items():
                print(f"  {label}: {seconds:.1f}s")
        if pgid is not None:
            assert _process_group(pgid) == set(), f"left behind: {_process_group(pgid)}"
        assert _stop_lines(data_dir)[-1].endswith("exited with code 0"), _stop_lines(data_dir)
