"""The Bot API relay of polling tenants, over real HTTP, in front of the fake Bot API in strict
webhook mode (it refuses a non-HTTPS webhook as Telegram does), with the tenant cache on a real
SQLite registry: webhook methods are answered by the relay, everything else reaches the fake
unchanged, and nothing reaches it for a token that is not the tenant's."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from daemon.adapters.registry_sqlite import SqliteRegistry
from daemon.model import Tenant, TenantStatus
from daemon.model_gateway.bot_api_relay import BotApiRelay, add_relay_routes, relay_api_root
from daemon.msgpath.tenant_cache import TenantCache
from daemon.telegram import BotApi, BotApiError
from otm.devtools._serving import ServedApp
from otm.devtools.fake_telegram import NOT_HTTPS, FakeTelegram, FaultMode

TOKEN = "4242:relay-secret-part"
OTHER_TOKEN = "4343:other-bot-secret"


@dataclass
class Relay:
    root: str
    """The tenant ``rl``'s apiRoot."""
    http: aiohttp.ClientSession
    telegram: FakeTelegram
    registry: SqliteRegistry
    tenants: TenantCache

    def api(self) -> BotApi:
        """A Bot API client whose root is the relay, as the tenant's agent has it."""
        return BotApi(self.http, self.root)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    await registry.create(Tenant(tenant_id="rl", bot_token=TOKEN, ingress="polling"))
    await registry.create(Tenant(tenant_id="other", bot_token=OTHER_TOKEN))
    tenants = TenantCache(registry)
    async with (
        FakeTelegram(strict_webhooks=True) as telegram,
        aiohttp.ClientSession() as http,
    ):
        app = web.Application()
        add_relay_routes(
            app, BotApiRelay(session=http, upstream_base=telegram.base_url, tenants=tenants)
        )
        try:
            async with ServedApp(app) as gateway:
                root = relay_api_root(f"{gateway.base_url}/v1", "rl")
                yield Relay(root, http, telegram, registry, tenants)
        finally:
            await registry.close()


def test_the_relay_root_is_the_gateway_listener_with_the_tenant_in_the_path() -> None:
    expected = "http://gw:8082/tenants/t-1/telegram"
    assert relay_api_root("http://gw:8082/v1", "t-1") == expected
    assert relay_api_root("http://gw:8082/v1/", "t-1") == expected


async def test_webhook_methods_are_answered_by_the_relay_never_by_telegram(relay: Relay) -> None:
    api = relay.api()
    # Strict Telegram refuses this URL; the relay never asks it.
    with pytest.raises(BotApiError) as refused:
        await BotApi(relay.http, relay.telegram.base_url).set_webhook(
            TOKEN, url="http://127.0.0.1:9/tg/rl", secret="s"
        )
    assert refused.value.description == NOT_HTTPS
    relay.telegram.reset()

    await api.set_webhook(TOKEN, url="http://127.0.0.1:9/tg/rl", secret="s")
    assert await api.call(TOKEN, "getWebhookInfo", {}) == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 0,
    }
    await api.delete_webhook(TOKEN)
    await api.call(TOKEN, "SETWEBHOOK", {"url": "http://x"})  # method names ignore case
    with pytest.raises(BotApiError) as conflict:
        await api.get_updates(TOKEN, offset=None, timeout_s=0)
    assert conflict.value.error_code == 409  # the daemon's poller is the only consumer
    assert relay.telegram.calls() == []
    assert TOKEN not in relay.telegram.webhooks


async def test_other_methods_reach_telegram_with_bodies_intact(relay: Relay) -> None:
    api = relay.api()
    me = await api.call(TOKEN, "getMe", {})
    assert (me["id"], me["is_bot"]) == (4242, True)
    await api.send_message(TOKEN, "111", "<b>héllo</b> ✓")
    [sent] = relay.telegram.sent(TOKEN)
    assert (sent.chat_id, sent.text) == ("111", "<b>héllo</b> ✓")
    # Telegram's own errors come back as they are (status and JSON).
    async with relay.http.post(f"{relay.root}/bot{TOKEN}/sendMessage", json={"chat_id": 1}) as r:
        assert (r.status, await r.json()) == (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"},
        )
    relay.telegram.set_fault(FaultMode.HTTP_502, token=TOKEN, method="sendChatAction", times=1)
    async with relay.http.post(f"{relay.root}/bot{TOKEN}/sendChatAction", json={}) as r:
        assert r.status == 502
    # A multipart upload (a photo with a caption), streamed through.
    photo = os.urandom(200_000)
    form = aiohttp.FormData()
    form.add_field("chat_id", "111")
    form.add_field("caption", "a picture")
    form.add_field("photo", photo, filename="p.jpg", content_type="image/jpeg")
    async with relay.http.post(f"{relay.root}/bot{TOKEN}/sendPhoto", data=form) as r:
        assert r.status == 200, await r.text()
    [upload] = relay.telegram.calls(TOKEN, "sendPhoto")
    assert upload.params == {
        "chat_id": "111",
        "caption": "a picture",
        "photo": {"filename": "p.jpg", "size": len(photo)},
    }
    # Query-string parameters (GET) too.
    async with relay.http.get(f"{relay.root}/bot{TOKEN}/getChat?chat_id=-100123") as r:
        assert r.status == 200
    assert relay.telegram.calls(TOKEN, "getChat")[0].params == {"chat_id": "-100123"}


async def test_file_downloads_are_streamed_unchanged(relay: Relay) -> None:
    content = os.urandom(3 << 20)
    relay.telegram.put_file(TOKEN, "documents/file_7.pdf", content)
    info = await relay.api().call(TOKEN, "getFile", {"file_id": "documents/file_7.pdf"})
    url = f"{relay.root}/file/bot{TOKEN}/{info['file_path']}"
    async with relay.http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/octet-stream"
        assert await resp.read() == content
    async with relay.http.get(f"{relay.root}/file/bot{TOKEN}/documents/missing.pdf") as resp:
        assert resp.status == 404


async def test_a_token_that_is_not_the_tenants_is_refused_without_reaching_telegram(
    relay: Relay,
) -> None:
    other_root = relay.root.replace("/tenants/rl/", "/tenants/other/")
    cases = [
        (relay.root, "4242:wrong-secret"),  # the tenant's bot id, another secret
        (relay.root, OTHER_TOKEN),  # another tenant's token under this tenant's path
        (relay.root.replace("/tenants/rl/", "/tenants/nobody/"), TOKEN),  # no such tenant
        (relay.root.replace("/tenants/rl/", "/tenants/Not_Valid/"), TOKEN),
        (other_root, TOKEN),
    ]
    for root, token in cases:
        for verb, path in (
            ("POST", f"/bot{token}/sendMessage"),
            ("POST", f"/bot{token}/setWebhook"),
            ("GET", f"/file/bot{token}/x"),
        ):
            body = {"chat_id": 1, "text": "x"} if verb == "POST" else None
            async with relay.http.request(verb, root + path, json=body) as r:
                assert r.status == 401, (root, path)
                assert (await r.json())["description"] == "Unauthorized"
    # A suspended tenant's bot is spoken for by no one.
    tenant = await relay.registry.get("rl")
    await relay.registry.update("rl", if_version=tenant.version, status=TenantStatus.SUSPENDED)
    relay.tenants.invalidate("rl")
    with pytest.raises(BotApiError) as refused:
        await relay.api().call(TOKEN, "getMe", {})
    assert refused.value.error_code == 401
    assert relay.telegram.calls() == []


async def test_the_token_never_reaches_the_log(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await relay.api().call(TOKEN, "getMe", {})
    await relay.api().call(TOKEN, "setWebhook", {"url": "http://x"})
    await relay.telegram.stop()  # Telegram unreachable: 502, logged by error type
    with pytest.raises(BotApiError) as failed:
        await relay.api().call(TOKEN, "sendMessage", {"chat_id": 1, "text": "x"})
    assert failed.value.error_code == 502
    assert "sendMessage of tenant rl failed upstream: ClientConnectorError" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN.split(":", 1)[1] not in caplog.text
