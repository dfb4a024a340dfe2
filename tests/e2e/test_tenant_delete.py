"""Deleting a tenant unregisters its bot's webhook with Telegram (deleteWebhook on the
fake Bot API), so Telegram stops posting to a router that would answer 404."""

from __future__ import annotations

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon


async def test_tenant_delete_removes_its_webhook_only(
    daemon: Daemon, telegram: FakeTelegram
) -> None:
    await daemon.create_tenant("gone", "61:gone")
    await daemon.create_tenant("kept", "62:kept")
    assert set(telegram.webhooks) == {"61:gone", "62:kept"}
    status, body = await daemon.api("DELETE", "/v1/tenants/gone")
    assert status in (200, 204), body
    assert set(telegram.webhooks) == {"62:kept"}
    assert telegram.webhooks["62:kept"].url.endswith("/tg/kept")
