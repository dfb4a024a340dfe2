"""Finding 8 against a real daemon: bot token shape, int64 update_ids, dedupe markers
of a deleted tenant, ``since_s=inf``, and /metrics naming no tenant."""

from __future__ import annotations

import aiohttp
import pytest

from daemon.model import validate_bot_token
from otm.devtools.fake_telegram import make_text_update
from tests.e2e.harness import Daemon
from tests.support.daemon_fixtures import DaemonFactory


@pytest.fixture
async def daemon(start_daemon: DaemonFactory) -> Daemon:
    return await start_daemon()


@pytest.mark.parametrize(
    "token",
    ["123:abc/../../x", "123:abc?x=1", "abc:def", "123:", ":abc", "123:abc def", "123:abc\n"],
)
async def test_malformed_bot_tokens_are_refused_on_create_and_update(
    daemon: Daemon, token: str
) -> None:
    status, body = await daemon.api(
        "POST", "/v1/tenants", json={"tenant_id": "shape", "bot_token": token}
    )
    assert status == 400 and "bot_token must look like" in body["error"], body
    assert token not in body["error"]  # a secret is never echoed
    status, _ = await daemon.api(
        "POST", "/v1/tenants", json={"tenant_id": "shape", "bot_token": "123456:AAE-x_y"}
    )
    assert status == 201
    status, body = await daemon.api("PATCH", "/v1/tenants/shape", json={"bot_token": token})
    assert status == 400 and "bot_token" in body["error"], body
    assert (await daemon.tenant("shape"))["status"] == "idle"


def test_bot_token_rule() -> None:
    assert validate_bot_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw") != ""
    assert validate_bot_token("") == ""  # no bot (yet)
    for bad in ("1:a/..", "1:a%2F", "x1:a", "1:a:b", 42):
        with pytest.raises(ValueError):
            validate_bot_token(bad)


async def test_update_id_must_be_an_int64(daemon: Daemon) -> None:
    secret = await daemon.create_tenant("ids", "6006:ids")
    await daemon.api("POST", "/v1/tenants/ids/suspend")  # keep what is buffered visible
    for bad in (10**4000, 1 << 63, -(1 << 63) - 1):
        raw = b'{"update_id": %d, "message": {}}' % bad
        assert await daemon.post_update("ids", secret, raw) == 400
    assert await daemon.post_update("ids", secret, make_text_update((1 << 63) - 1, 1, "hi")) == 200
    status, buffer = await daemon.api("GET", "/v1/tenants/ids/buffer")
    assert (status, buffer["pending"]) == (200, 1)
    status, body = await daemon.api(
        "POST", "/v1/tenants/ids/simulate", json={"update": {"update_id": 1 << 64}}
    )
    assert status == 400, body


async def test_a_recreated_tenant_does_not_inherit_dedupe_markers(daemon: Daemon) -> None:
    async def buffered_after_sending_update_7() -> int:
        secret = await daemon.create_tenant("again", "7007:again")
        status, _ = await daemon.api("POST", "/v1/tenants/again/suspend")
        assert status == 200
        await daemon.send_text("again", secret, 7, 1, "hello")
        status, buffer = await daemon.api("GET", "/v1/tenants/again/buffer")
        assert status == 200
        return int(buffer["pending"])

    assert await buffered_after_sending_update_7() == 1
    status, _ = await daemon.api("DELETE", "/v1/tenants/again")
    assert status == 204
    # Same id, same update_id: a new tenant's first message, not a Telegram retry.
    assert await buffered_after_sending_update_7() == 1  # the old buffer is gone too
    status, metrics = await daemon.api("GET", "/metrics")
    assert status == 200
    assert "otm_updates_duplicate_total 0.0" in metrics  # not dropped as a duplicate


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
async def test_logs_since_must_be_finite(daemon: Daemon, value: str) -> None:
    await daemon.create_tenant("logs", "8008:logs")
    status, body = await daemon.api("GET", f"/v1/tenants/logs/logs?since_s={value}")
    assert status == 400, body


async def test_open_metrics_name_no_tenant(daemon: Daemon) -> None:
    secret = await daemon.create_tenant("secret-name", "9009:named")
    await daemon.api("POST", "/v1/tenants/secret-name/suspend")
    await daemon.send_text("secret-name", secret, 1, 1, "hi")
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{daemon.admin_url}/metrics") as resp:
            assert resp.status == 200
            assert "secret-name" not in await resp.text()
        async with anonymous.get(f"{daemon.admin_url}/metrics/tenants") as resp:
            assert resp.status == 401
    status, text = await daemon.api("GET", "/metrics/tenants")
    assert status == 200
    assert 'otm_buffered_messages{tenant="secret-name"} 1.0' in text
