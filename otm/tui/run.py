"""Run the dashboard against a daemon's admin API (what `otm tui` calls)."""

from __future__ import annotations

import asyncio

from otm.client import Target
from otm.tui.api_source import ApiTenantSource
from otm.tui.app import make_app


async def run_dashboard_async(target: Target, *, readonly: bool) -> None:
    async with ApiTenantSource(target) as source:
        await make_app(source, readonly=readonly).run_async()


def run_dashboard(target: Target, *, readonly: bool) -> None:
    asyncio.run(run_dashboard_async(target, readonly=readonly))
