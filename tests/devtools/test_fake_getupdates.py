"""The fake Bot API's getUpdates over real HTTP: Telegram's semantics, both 409 conflicts."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from otm.devtools.fake_telegram import FakeTelegram, make_text_update
from otm.devtools.fake_updates import TERMINATED, TERMINATED_BY_WEBHOOK, WEBHOOK_ACTIVE
from tests.devtools.test_fake_telegram import call

BOT = "41:poll"


def ids(body: dict[str, object]) -> list[int]:
    result = body["result"]
    assert isinstance(result, list)
    return [u["update_id"] for u in result]


async def get_updates(
    http: aiohttp.ClientSession, tg: FakeTelegram, **params: object
) -> tuple[int, dict[str, object]]:
    return await call(http, tg, BOT, "getUpdates", json=params)


async def waiting_poll(
    http: aiohttp.ClientSession, tg: FakeTelegram
) -> asyncio.Task[tuple[int, dict[str, object]]]:
    """A 30 s long poll, started and waiting at the fake."""
    calls = len(tg.calls(BOT, "getUpdates"))
    poll = asyncio.create_task(get_updates(http, tg, timeout=30))
    await tg.wait_for_calls(BOT, "getUpdates", count=calls + 1)
    return poll


async def answer(
    poll: asyncio.Task[tuple[int, dict[str, object]]],
) -> tuple[int, dict[str, object]]:
    async with asyncio.timeout(10):
        return await poll


async def test_updates_stay_until_an_offset_confirms_them(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    for n in (5, 6, 7):
        fake_tg.inject_update(BOT, make_text_update(n, 9, f"m{n}"))
    status, body = await get_updates(http, fake_tg)
    assert (status, ids(body)) == (200, [5, 6, 7])
    # Without an offset nothing is confirmed: the same updates come again.
    assert ids((await get_updates(http, fake_tg))[1]) == [5, 6, 7]
    # offset = last seen + 1 confirms everything below it.
    assert ids((await get_updates(http, fake_tg, offset=7))[1]) == [7]
    assert [u["update_id"] for u in fake_tg.pending_updates(BOT)] == [7]
    assert ids((await get_updates(http, fake_tg, offset=8))[1]) == []
    assert fake_tg.pending_updates(BOT) == []


async def test_limit_and_negative_offset(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    for n in range(1, 6):
        fake_tg.inject_update(BOT, make_text_update(n, 9, "x"))
    assert ids((await get_updates(http, fake_tg, limit=2))[1]) == [1, 2]
    # A negative offset keeps only the last -offset updates; the others are forgotten.
    assert ids((await get_updates(http, fake_tg, offset=-2))[1]) == [4, 5]
    assert ids((await get_updates(http, fake_tg))[1]) == [4, 5]
    for bad in (0, 101):
        status, body = await get_updates(http, fake_tg, limit=bad)
        assert status == 400, body
        assert body["ok"] is False


async def test_a_long_poll_answers_as_soon_as_an_update_arrives(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    poll = await waiting_poll(http, fake_tg)
    assert not poll.done()
    fake_tg.inject_update(BOT, make_text_update(3, 9, "late"))
    status, body = await answer(poll)
    assert (status, ids(body)) == (200, [3])


async def test_a_short_poll_answers_at_once_when_empty(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(5):
        status, body = await get_updates(http, fake_tg, timeout=0)
    assert (status, body) == (200, {"ok": True, "result": []})


async def test_allowed_updates_filter_updates_created_after_the_call(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    reaction = {"message_reaction": {"chat": {"id": 9}, "message_id": 1}}
    edited = {"edited_message": make_text_update(0, 9, "e")["message"]}
    # Default: everything but reactions and chat_member.
    assert fake_tg.inject_update(BOT, {"update_id": 1, **reaction}) is None
    assert fake_tg.inject_update(BOT, {"update_id": 2, **edited}) == 2
    status, _ = await get_updates(http, fake_tg, allowed_updates=["message"])
    assert status == 200
    # The already queued edit stays; a new one is not queued any more.
    assert fake_tg.inject_update(BOT, {"update_id": 3, **edited}) is None
    assert fake_tg.inject_update(BOT, make_text_update(4, 9, "m")) == 4
    assert ids((await get_updates(http, fake_tg))[1]) == [2, 4]
    # Form bodies carry the list as JSON text; an empty list means the default again.
    async with http.post(
        f"{fake_tg.base_url}/bot{BOT}/getUpdates", data={"allowed_updates": "[]", "offset": "5"}
    ) as response:
        assert response.status == 200
    assert fake_tg.inject_update(BOT, {"update_id": 6, **edited}) == 6


async def test_webhook_set_refuses_get_updates_with_409(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    await call(
        http, fake_tg, BOT, "setWebhook", json={"url": "https://r/tg/t", "secret_token": "s"}
    )
    status, body = await get_updates(http, fake_tg)
    assert status == 409
    assert body == {"ok": False, "error_code": 409, "description": WEBHOOK_ACTIVE}
    await call(http, fake_tg, BOT, "deleteWebhook")
    status, _ = await get_updates(http, fake_tg)
    assert status == 200


async def test_setting_a_webhook_ends_a_waiting_long_poll_with_409(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    poll = await waiting_poll(http, fake_tg)
    await call(http, fake_tg, BOT, "setWebhook", json={"url": "https://r/tg/t"})
    status, body = await answer(poll)
    assert status == 409
    assert body == {"ok": False, "error_code": 409, "description": TERMINATED_BY_WEBHOOK}


async def test_a_second_consumer_terminates_the_first_with_409(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    first = await waiting_poll(http, fake_tg)
    second = await waiting_poll(http, fake_tg)
    status, body = await answer(first)
    assert status == 409
    assert body == {"ok": False, "error_code": 409, "description": TERMINATED}
    assert fake_tg.terminated_polls(BOT) == 1
    fake_tg.inject_update(BOT, make_text_update(1, 9, "to the second"))
    status, body = await answer(second)
    assert (status, ids(body)) == (200, [1])


async def test_bots_have_separate_queues_and_ids_must_increase(
    fake_tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake_tg.inject_update("42:other", make_text_update(10, 9, "other"))
    assert fake_tg.inject_update(BOT, {"message": make_text_update(0, 9, "m")["message"]}) == 1
    assert ids((await get_updates(http, fake_tg))[1]) == [1]
    with pytest.raises(ValueError, match="not above"):
        fake_tg.inject_update(BOT, make_text_update(1, 9, "again"))
    async with http.post(
        f"{fake_tg.base_url}/_fake/updates",
        json={"token": "42:other", "update": make_text_update(11, 9, "over http")},
    ) as response:
        assert (response.status, await response.json()) == (200, {"update_id": 11})
    async with http.get(f"{fake_tg.base_url}/_fake/updates?token=42:other") as response:
        pending = (await response.json())["updates"]
    assert [u["update_id"] for u in pending] == [10, 11]
