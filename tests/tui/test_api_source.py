"""ApiTenantSource and the dashboard against a real daemon subprocess (real Redis, SQLite
registry), found the way `otm tui` finds it: {data_dir}/daemon.json and admin-token."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from otm.client import resolve_target
from otm.tui import OtmApp, make_app
from otm.tui.api_source import ApiTenantSource
from otm.tui.detail_screens import DescribeScreen
from otm.tui.main_screen import HealthPanel
from otm.tui.source import SourceError, SourceUnavailable
from tests.support.admin_calls import api
from tests.support.daemon_proc import DaemonProc
from tests.tui.conftest import FAST, cell_text, row_ids, wait_until
from tests.tui.real_daemon import free_port, start_daemon


def discovered_source(daemon: DaemonProc) -> ApiTenantSource:
    target = resolve_target(data_dir=daemon.data_dir, env={})
    assert target.server == daemon.admin_url and target.token == daemon.token
    return ApiTenantSource(target)


def panel(app: OtmApp) -> str:
    return str(app.tenants_screen.query_one(HealthPanel).content)


async def test_dashboard_over_a_real_daemon(daemon: DaemonProc) -> None:
    for tenant_id, labels in (("alpha", {"plan": "pro"}), ("beta", {}), ("gamma", {})):
        assert (
            api(
                daemon,
                "POST",
                "/v1/tenants",
                {"bot_token": "1:t", "tenant_id": tenant_id, "labels": labels},
            )[0]
            == 201
        )
    assert api(daemon, "POST", "/v1/tenants/gamma/suspend")[0] == 200

    async with discovered_source(daemon) as source:
        app = make_app(source, readonly=False, timings=FAST)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: row_ids(app) == ["alpha", "beta", "gamma"], "rows")
            assert cell_text(app, "gamma", "status") == "suspended"
            assert cell_text(app, "alpha", "status") == "idle"
            await wait_until(pilot, lambda: "registry sqlite ok" in panel(app), "status")
            assert "redis ok" in panel(app) and "● live" in panel(app)

            # A tenant created elsewhere shows up through the watch stream.
            created = await asyncio.to_thread(
                api, daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "delta"}
            )
            assert created[0] == 201
            await wait_until(pilot, lambda: "delta" in row_ids(app), "the watched tenant")

            # Describe reads record and event log from the daemon.
            await pilot.press("d")  # alpha, the first row
            screen = app.screen
            assert isinstance(screen, DescribeScreen)
            await wait_until(pilot, lambda: screen.details is not None, "describe")
            assert screen.details is not None
            assert screen.details.record["labels"] == {"plan": "pro"}
            assert "created" in [e["kind"] for e in screen.details.events]
            await pilot.press("escape")

            # Delete through the dashboard, confirmed: gone from the daemon and the table.
            table = app.tenants_screen.table
            table.move_cursor(row=table.get_row_index("beta"), animate=False)
            await pilot.pause()
            await pilot.press("ctrl+d", "tab", "enter")
            await wait_until(pilot, lambda: "beta" not in row_ids(app), "the deletion")
            assert (await asyncio.to_thread(api, daemon, "GET", "/v1/tenants/beta"))[0] == 404
            assert row_ids(app) == ["alpha", "delta", "gamma"]


async def test_config_and_errors_over_a_real_daemon(daemon: DaemonProc) -> None:
    async with discovered_source(daemon) as source:
        with pytest.raises(SourceError, match="warm_pool_target must be between 0 and 1000"):
            await source.set_config({"warm_pool_target": 5000})
        config = await source.set_config({"warm_pool_target": 2})
        assert config["warm_pool_target"] == 2
        assert (await source.get_config())["warm_pool_target"] == 2
        status = await source.get_status()
        assert status["warm_pool"]["target"] == 2 and status["redis"]["ok"] is True
        with pytest.raises(SourceError, match="not found"):
            await source.delete("nobody")
    target = resolve_target(data_dir=daemon.data_dir, env={})
    async with ApiTenantSource(replace(target, token="wrong")) as source:
        with pytest.raises(SourceError, match="unauthorized"):
            await source.get_status()
        with pytest.raises(SourceError, match="unauthorized"):
            await anext(aiter(source.watch()))


async def test_watch_reconnects_after_a_daemon_restart(redis_url: str, tmp_path: Path) -> None:
    data_dir, port = tmp_path / "otm", free_port()
    with start_daemon(data_dir, redis_url, port) as first:
        assert (
            api(first, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "survivor"})[0]
            == 201
        )
        source = ApiTenantSource(resolve_target(data_dir=data_dir, env={}))
        async with source:
            app = make_app(source, readonly=True, timings=FAST)
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_until(pilot, lambda: row_ids(app) == ["survivor"], "rows")
                await asyncio.to_thread(first.stop)
                await wait_until(pilot, lambda: app.connection.state == "disconnected", "drop")
                await wait_until(pilot, lambda: "disconnected, retrying" in panel(app))
                assert row_ids(app) == ["survivor"]  # stale rows stay on screen
                with start_daemon(data_dir, redis_url, port) as second:
                    assert second.admin_url == first.admin_url
                    await wait_until(pilot, lambda: app.connection.state == "live", "reconnect")
                    created = await asyncio.to_thread(
                        api,
                        second,
                        "POST",
                        "/v1/tenants",
                        {"bot_token": "1:t", "tenant_id": "newcomer"},
                    )
                    assert created[0] == 201
                    await wait_until(pilot, lambda: "newcomer" in row_ids(app), "resync")
                    assert app.connection.attempt == 0


async def test_a_closed_port_is_unavailable() -> None:
    target = resolve_target(server=f"http://127.0.0.1:{free_port()}", token="t", env={})
    async with ApiTenantSource(target) as source:
        with pytest.raises(SourceUnavailable, match="connection refused"):
            await anext(aiter(source.watch()))
        with pytest.raises(SourceUnavailable, match="connection refused"):
            await source.get_status()


async def test_audit_view_over_a_real_daemon(daemon: DaemonProc) -> None:
    assert api(daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "alpha"})[0] == 201
    assert api(daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "beta"})[0] == 201
    assert api(daemon, "POST", "/v1/tenants/beta/suspend")[0] == 200
    async with discovered_source(daemon) as source:
        everything = await source.audit(None, limit=10)
        assert [(e["tenant"], e["action"]) for e in everything] == [
            ("alpha", "tenant.create"),
            ("beta", "tenant.create"),
            ("beta", "tenant.suspend"),
        ]
        beta = await source.audit("beta", limit=10)
        assert [e["action"] for e in beta] == ["tenant.create", "tenant.suspend"]
        assert await source.audit("beta", limit=1) == beta[-1:]


async def test_snapshots_and_a_refused_restore_over_a_real_daemon(daemon: DaemonProc) -> None:
    assert api(daemon, "POST", "/v1/tenants", {"bot_token": "1:t", "tenant_id": "hist"})[0] == 201
    async with discovered_source(daemon) as source:
        assert await source.snapshots("hist") == []
        with pytest.raises(SourceError, match="no snapshot"):
            await source.restore("hist", "snapshots/history/20200101T000000.000000Z-sleep.tar.gz")
        with pytest.raises(SourceError, match="not found"):
            await source.snapshots("nobody")
