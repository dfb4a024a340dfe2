"""The fake Telegram Bot API over real HTTP: routing per token, recording, waiting, faults,
strict webhook URLs, files."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from otm.devtools.fake_telegram import (
    BAD_PORT,
    NOT_HTTPS,
    FakeTelegram,
    FaultMode,
    bot_identity,
    make_text_update,
)
from tests.support.agent_stub import REPO_ROOT


async def call(
    http: aiohttp.ClientSession, tg: FakeTelegram, token: str, method: str, **kwargs: object
) -> tuple[int, dict[str, object]]:
    async with http.post(f"{tg.base_url}/bot{token}/{method}", **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_get_me_answers_an_identity_derived_from_the_token(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{fake_tg.base_url}/bot12345:abc/getMe") as response:
        body = await response.json()
    assert response.status == 200
    assert body == {"ok": True, "result": bot_identity("12345:abc")}
    assert body["result"]["id"] == 12345
    assert body["result"]["is_bot"] is True
    assert body["result"]["username"] == "fake_12345_bot"


@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
async def test_set_webhook_is_recorded_from_every_body_encoding(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession, encoding: str
) -> None:
    fields = {"url": "https://router/tg/t1", "secret_token": "s3", "allowed_updates": ["message"]}
    if encoding == "json":
        kwargs: dict[str, object] = {"json": fields}
    else:
        flat = {**fields, "allowed_updates": '["message"]'}
        form = aiohttp.FormData(flat)
        if encoding == "multipart":
            form.add_field("certificate", b"PEM", filename="cert.pem")
        kwargs = {"data": form}
    status, body = await call(http, fake_tg, "7:a", "setWebhook", **kwargs)
    assert (status, body) == (200, {"ok": True, "result": True})
    hook = fake_tg.webhooks["7:a"]
    assert (hook.url, hook.secret_token, hook.allowed_updates) == (
        "https://router/tg/t1",
        "s3",
        ["message"],
    )
    status, info = await call(http, fake_tg, "7:a", "getWebhookInfo")
    assert info["result"]["url"] == "https://router/tg/t1"  # type: ignore[index]
    await call(http, fake_tg, "7:a", "deleteWebhook")
    assert "7:a" not in fake_tg.webhooks
    status, info = await call(http, fake_tg, "7:a", "getWebhookInfo")
    assert info["result"]["url"] == ""  # type: ignore[index]


async def test_messages_are_recorded_per_token_and_answered_with_message_objects(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    _, first = await call(
        http, fake_tg, "1:a", "sendMessage", json={"chat_id": "111", "text": "hi"}
    )
    _, second = await call(http, fake_tg, "1:a", "sendMessage", json={"chat_id": 111, "text": "yo"})
    await call(http, fake_tg, "2:b", "sendMessage", data={"chat_id": "222", "text": "other bot"})
    _, edited = await call(
        http,
        fake_tg,
        "1:a",
        "editMessageText",
        json={"chat_id": "111", "message_id": 1, "text": "hi!"},
    )
    result = first["result"]
    assert isinstance(result, dict)
    assert result["message_id"] == 1
    assert result["chat"] == {"id": 111, "type": "private"}
    assert result["text"] == "hi"
    assert second["result"]["message_id"] == 2  # type: ignore[index]
    assert edited["result"]["message_id"] == 1  # type: ignore[index]
    assert [(m.method, m.chat_id, m.text) for m in fake_tg.sent("1:a")] == [
        ("sendMessage", "111", "hi"),
        ("sendMessage", "111", "yo"),
        ("editMessageText", "111", "hi!"),
    ]
    assert [m.text for m in fake_tg.sent("2:b")] == ["other bot"]
    assert len(fake_tg.sent()) == 4
    assert [m.text for m in fake_tg.sent(chat_id=222)] == ["other bot"]


async def test_unknown_methods_answer_true_and_bad_messages_answer_400(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, fake_tg, "1:a", "setMyCommands", json={"commands": []})
    assert (status, body) == (200, {"ok": True, "result": True})
    status, body = await call(http, fake_tg, "1:a", "sendMessage", json={"chat_id": 1})
    assert status == 400
    assert body["ok"] is False
    async with http.post(
        f"{fake_tg.base_url}/bot1:a/sendMessage",
        data=b"{broken",
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    assert fake_tg.sent() == []
    assert [c.method for c in fake_tg.calls("1:a")] == ["setMyCommands", "sendMessage"]


async def test_wait_for_messages_wakes_on_the_send_and_times_out_when_bounded(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        await call(http, fake_tg, "1:a", "sendMessage", json={"chat_id": 5, "text": "late"})

    sender = asyncio.create_task(send_later())
    messages = await fake_tg.wait_for_messages("1:a", 1, timeout=5)
    await sender
    assert [m.text for m in messages] == ["late"]
    with pytest.raises(TimeoutError, match="expected 2 message"):
        await fake_tg.wait_for_messages("1:a", 2, timeout=0.1)


async def test_fault_answers_502_for_n_calls_then_recovers(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake_tg.set_fault(FaultMode.HTTP_502, token="1:a", method="sendMessage", times=2)
    statuses = []
    for _ in range(3):
        status, _ = await call(
            http, fake_tg, "1:a", "sendMessage", json={"chat_id": 1, "text": "x"}
        )
        statuses.append(status)
    other, _ = await call(http, fake_tg, "2:b", "sendMessage", json={"chat_id": 1, "text": "x"})
    assert statuses == [502, 502, 200]
    assert other == 200
    assert [c.faulted for c in fake_tg.calls("1:a")] == [True, True, False]
    assert len(fake_tg.sent("1:a")) == 1


async def test_close_fault_drops_the_connection(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake_tg.set_fault(FaultMode.CLOSE, method="getMe")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, fake_tg, "1:a", "getMe")
    fake_tg.clear_faults()
    status, _ = await call(http, fake_tg, "1:a", "getMe")
    assert status == 200


async def test_http_query_api_long_polls_and_sets_faults(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{fake_tg.base_url}/_fake/faults", json={"token": "1:a", "method": "getMe", "mode": "502"}
    ) as response:
        assert response.status == 200
    status, _ = await call(http, fake_tg, "1:a", "getMe")
    assert status == 502
    async with http.delete(f"{fake_tg.base_url}/_fake/faults") as response:
        assert response.status == 200

    async def send_later() -> None:
        await asyncio.sleep(0.05)
        await call(http, fake_tg, "1:a", "sendMessage", json={"chat_id": 9, "text": "polled"})

    sender = asyncio.create_task(send_later())
    async with http.get(
        f"{fake_tg.base_url}/_fake/sent", params={"token": "1:a", "count": "1", "timeout": "5"}
    ) as response:
        body = await response.json()
    await sender
    assert body["complete"] is True
    assert [(m["chat_id"], m["text"]) for m in body["messages"]] == [("9", "polled")]
    async with http.get(f"{fake_tg.base_url}/_fake/sent", params={"token": "2:b"}) as response:
        assert (await response.json())["messages"] == []
    async with http.get(f"{fake_tg.base_url}/_fake/calls", params={"method": "getMe"}) as response:
        assert [c["faulted"] for c in (await response.json())["calls"]] == [True]


def test_make_text_update_is_a_private_text_message() -> None:
    update = make_text_update(7, 111, "hello", date=1)
    assert update == {
        "update_id": 7,
        "message": {
            "message_id": 7,
            "from": {"id": 111, "is_bot": False, "first_name": "Tester"},
            "chat": {"id": 111, "type": "private", "first_name": "Tester"},
            "date": 1,
            "text": "hello",
        },
    }


@pytest.mark.parametrize(
    ("module", "probe_path"),
    [("otm.devtools.fake_telegram", "/bot1:a/getMe"), ("otm.devtools.stub_llm", "/models")],
)
async def test_runs_as_a_process_printing_its_url(
    http: aiohttp.ClientSession, module: str, probe_path: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--port",
        "0",
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(15):
            url = (await process.stdout.readline()).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with http.get(f"{url}{probe_path}") as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def test_strict_webhooks_refuse_what_telegram_refuses(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    token = "61:strict"
    # Lenient by default: the suite registers loopback http:// URLs.
    status, _ = await call(http, fake_tg, token, "setWebhook", json={"url": "http://127.0.0.1:9/x"})
    assert status == 200 and token in fake_tg.webhooks
    fake_tg.strict_webhooks = True
    refused = {
        "http://bot.example.com/tg/a": NOT_HTTPS,
        "http://127.0.0.1:9/tg/a": NOT_HTTPS,
        "ftp://bot.example.com/tg/a": NOT_HTTPS,
        "https:///tg/a": NOT_HTTPS,
        "https://bot.example.com:8080/tg/a": BAD_PORT,
        "https://bot.example.com:99999/tg/a": BAD_PORT,
    }
    for url, description in refused.items():
        status, body = await call(http, fake_tg, token, "setWebhook", json={"url": url})
        assert (status, body) == (
            400,
            {"ok": False, "error_code": 400, "description": description},
        ), url
    assert fake_tg.webhooks[token].url == "http://127.0.0.1:9/x"  # the refused ones changed nothing
    for url in ("https://bot.example.com/tg/a", "https://bot.example.com:8443/tg/a"):
        status, _ = await call(http, fake_tg, token, "setWebhook", json={"url": url})
        assert status == 200 and fake_tg.webhooks[token].url == url
    status, _ = await call(http, fake_tg, token, "setWebhook", json={"url": ""})  # = delete
    assert status == 200 and token not in fake_tg.webhooks


async def test_files_are_served_to_their_bot_only(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake_tg.put_file("62:files", "photos/a.jpg", b"\xff\xd8 jpeg")
    status, body = await call(
        http, fake_tg, "62:files", "getFile", json={"file_id": "photos/a.jpg"}
    )
    assert status == 200 and body["result"]["file_path"] == "photos/a.jpg"
    assert body["result"]["file_size"] == 7
    async with http.get(f"{fake_tg.base_url}/file/bot62:files/photos/a.jpg") as resp:
        assert (resp.status, await resp.read()) == (200, b"\xff\xd8 jpeg")
    async with http.get(f"{fake_tg.base_url}/file/bot63:other/photos/a.jpg") as resp:
        assert resp.status == 404
    status, _ = await call(http, fake_tg, "63:other", "getFile", json={"file_id": "photos/a.jpg"})
    assert status == 400
