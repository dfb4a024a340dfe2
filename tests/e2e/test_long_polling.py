"""End to end with long polling: Telegram (fake) holds the updates, the daemon fetches them
with getUpdates → buffer → delivery → agent (stand-in process) → reply. No webhook, no router.

Telegram (the fake, in strict webhook mode) refuses the agent's own ``setWebhook`` of a
non-HTTPS URL, as it would for a laptop; the stand-in, like OpenClaw, then shuts its webhook
listener. The agent's Bot API is the daemon's relay, which keeps that call from Telegram."""

from __future__ import annotations

import json

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from tests.e2e.harness import agent_update_log
from tests.e2e.test_message_flow import echoes
from tests.support.daemon_fixtures import DaemonFactory
from tests.support.polling import eventually

REPLY_TIMEOUT = 30.0


async def test_a_polling_daemon_delivers_without_a_webhook(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    telegram.strict_webhooks = True
    daemon = await start_daemon(OTM_INGRESS="polling", OTM_POLL_TIMEOUT_S="2")
    token = "3101:pollSecretXyz"
    status, body = await daemon.api(
        "POST", "/v1/tenants", json={"tenant_id": "lp", "bot_token": token}
    )
    assert status == 201, body
    assert body["ingress"] is None  # the daemon's setting applies
    assert token not in telegram.webhooks  # nothing registered: the daemon polls
    for n in (1, 2, 3):
        telegram.inject_update(token, make_text_update(n, 8, f"m{n}"))
    # The sleeping tenant is woken by what its poller fetched.
    sent = await telegram.wait_for_messages(token, 4, REPLY_TIMEOUT, chat_id=8)
    assert echoes([m.text for m in sent]) == [f"echo: m{n} (#{n})" for n in (1, 2, 3)]
    # The agent's Bot API is the relay on the daemon's agent listener: its setWebhook at
    # start was answered there, its replies went through to Telegram.
    [config] = (daemon.data_dir / "agents" / "lp").glob("*/openclaw.json")
    api_root = json.loads(config.read_text())["channels"]["telegram"]["apiRoot"]
    assert api_root.startswith("http://127.0.0.1:") and api_root.endswith("/tenants/lp/telegram")
    telegram.inject_update(token, make_text_update(4, 8, "hot"))
    sent = await telegram.wait_for_messages(token, 5, REPLY_TIMEOUT, chat_id=8)
    assert sent[-1].text == "echo: hot (#4)"
    assert telegram.calls(token, "getMe")  # the agent's, relayed
    assert not telegram.calls(token, "setWebhook")
    assert token not in telegram.webhooks
    await eventually(lambda: not telegram.pending_updates(token), 10, "all confirmed")

    # Asleep, the tenant is still polled: the next message wakes it.
    status, _ = await daemon.api("POST", "/v1/tenants/lp/sleep")
    assert status == 200
    telegram.inject_update(token, make_text_update(5, 8, "wake up"))
    sent = await telegram.wait_for_messages(token, 7, REPLY_TIMEOUT, chat_id=8)
    assert echoes([m.text for m in sent])[-1] == "echo: wake up (#5)"
    status, _ = await daemon.api("POST", "/v1/tenants/lp/sleep")
    assert status == 200
    assert agent_update_log(daemon.data_dir, "lp") == [1, 2, 3, 4, 5]
    assert not telegram.calls(token, "setWebhook")
    assert token.split(":", 1)[1] not in daemon.log_path.read_text()


async def test_switching_a_tenant_between_webhook_and_polling(
    start_daemon: DaemonFactory, telegram: FakeTelegram
) -> None:
    daemon = await start_daemon()
    token = "3102:switch"
    await daemon.create_tenant("sw", token)  # webhook by default: registered with Telegram
    assert token in telegram.webhooks

    status, body = await daemon.api("PATCH", "/v1/tenants/sw", json={"ingress": "pigeon"})
    assert status == 400
    assert "ingress must be one of webhook, polling" in body["error"]

    status, body = await daemon.api("PATCH", "/v1/tenants/sw", json={"ingress": "polling"})
    assert (status, body["ingress"]) == (200, "polling")
    assert token not in telegram.webhooks  # deleteWebhook: getUpdates would be refused
    telegram.inject_update(token, make_text_update(1, 4, "polled"))
    sent = await telegram.wait_for_messages(token, 2, REPLY_TIMEOUT, chat_id=4)
    assert echoes([m.text for m in sent]) == ["echo: polled (#1)"]

    status, body = await daemon.api("PATCH", "/v1/tenants/sw", json={"ingress": "webhook"})
    assert (status, body["ingress"]) == (200, "webhook")
    assert telegram.webhooks[token].url.endswith("/tg/sw")
    # The running agent keeps the relay as its Bot API until its next wake: its replies
    # still go out.
    secret = telegram.webhooks[token].secret_token
    assert secret
    before = len(telegram.sent(token, chat_id=4))
    await daemon.send_text("sw", secret, 3, 4, "via the router")
    sent = await telegram.wait_for_messages(token, before + 1, REPLY_TIMEOUT, chat_id=4)
    assert echoes([m.text for m in sent])[-1] == "echo: via the router (#2)"
    # The poller is gone: updates stay with Telegram (which would now POST them).
    telegram.inject_update(token, make_text_update(2, 4, "not polled"))
    status, _ = await daemon.api("POST", "/v1/tenants/sw/sleep")
    assert status == 200
    assert [u["update_id"] for u in telegram.pending_updates(token)] == [2]
    assert token in telegram.webhooks  # a webhook tenant's webhook is left alone
