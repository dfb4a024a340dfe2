"""The audit view (Pilot): `:audit` shows every entry newest first, `a` in describe one
tenant's; a failed action is marked, secrets stay masked as the daemon sent them."""

from __future__ import annotations

from textual.widgets import Input

from otm.tui import OtmApp
from otm.tui.audit_screen import AuditScreen
from otm.tui.detail_screens import DescribeScreen
from otm.tui.dialogs import CommandPrompt
from tests.tui.conftest import press_on, ready, static_text, wait_until
from tests.tui.fake_source import FakeTenantSource

SIZE = (160, 40)
ENTRIES = [
    {
        "id": "1733320000000-0",
        "time": "2026-12-04T10:00:00+00:00",
        "actor": "admin",
        "source": "127.0.0.1",
        "tenant": "orbit-cafe",
        "action": "tenant.update",
        "changes": {
            "bot_token": {"before": "***", "after": "***"},
            "idle_timeout_s": {"before": None, "after": 300},
        },
        "outcome": "ok",
        "status": 200,
    },
    {
        "id": "1733320060000-0",
        "time": "2026-12-04T10:01:00+00:00",
        "actor": "ci",
        "source": "10.0.0.7",
        "tenant": None,
        "action": "config.set",
        "changes": {"default_idle_timeout_s": {"before": 600, "after": 900}},
        "outcome": "ok",
        "status": 200,
    },
    {
        "id": "1733320120000-0",
        "time": "2026-12-04T10:02:00+00:00",
        "actor": "ci",
        "source": "10.0.0.7",
        "tenant": "orbit-cafe",
        "action": "tenant.wake",
        "changes": {},
        "outcome": "error",
        "status": 409,
    },
]


def _rows(app: OtmApp) -> list[str]:
    return static_text(app, "#audit-entries").splitlines()


async def test_audit_command_shows_every_entry_newest_first(
    app: OtmApp, source: FakeTenantSource
) -> None:
    source.audit_entries = list(ENTRIES)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("colon")
        assert isinstance(app.screen, CommandPrompt)
        app.screen.query_one("#command", Input).value = "audit"
        await pilot.press("enter")
        assert isinstance(app.screen, AuditScreen)
        screen = app.screen
        await wait_until(pilot, lambda: screen.entries is not None, "the audit entries")
        rows = _rows(app)
        assert rows[0].split()[:3] == ["TIME", "ACTOR", "SOURCE"]
        assert rows[1].split()[2:] == [
            "ci",
            "10.0.0.7",
            "orbit-cafe",
            "tenant.wake",
            "error",
            "409",
            "-",
        ]
        assert "default_idle_timeout_s: 600→900" in rows[2]
        assert "bot_token: ***→***, idle_timeout_s: null→300" in rows[3]
        assert ("audit", None) in source.calls
        await pilot.press("escape")
        assert not isinstance(app.screen, AuditScreen)


async def test_describe_opens_the_tenants_audit(app: OtmApp, source: FakeTenantSource) -> None:
    source.audit_entries = list(ENTRIES)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await press_on(pilot, app, "orbit-cafe", "d")
        assert isinstance(app.screen, DescribeScreen)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await wait_until(pilot, lambda: screen.entries is not None, "the audit entries")
        assert [e["action"] for e in screen.entries or []] == ["tenant.update", "tenant.wake"]
        assert ("audit", "orbit-cafe") in source.calls
        assert len(_rows(app)) == 3
