from __future__ import annotations

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon


async def test_cold_wake_smoke(daemon: Daemon, telegram: FakeTelegram) -> None:
    secret = await daemon.create_tenant("t1", "1001:tok")
    await daemon.send_text("t1", secret, 1, 42, "hello")
    sent = await telegram.wait_for_messages("1001:tok", 2, timeout=20, chat_id=42)
    print([m.text for m in sent])
    print(daemon.log_tail())
