"""The local runtime as the runtime tests build it: settings around a fake Bot API, a
directory state store, webhooks pointing nowhere (the tests POST to the agents directly)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from daemon.adapters.local.runtime import LocalRuntime
from daemon.adapters.state_dir import DirStateStore
from daemon.settings import Settings, load_settings


def local_runtime_settings(
    data_dir: Path,
    telegram_api_base: str,
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Settings for a local runtime under ``data_dir`` (``env``: None reads the process's)."""
    return load_settings(
        flags={
            "data_dir": str(data_dir),
            "telegram_api_base": telegram_api_base,
            "agent_stop_grace_s": 10.0,
            **flags,
        },
        env=env,
    )


def unreachable_webhook(tenant_id: str) -> str:
    return f"http://127.0.0.1:9/tg/{tenant_id}"


def new_local_runtime(
    settings: Settings, session: aiohttp.ClientSession
) -> tuple[LocalRuntime, DirStateStore]:
    store = DirStateStore(settings.state_dir)
    runtime = LocalRuntime(
        settings=settings,
        state_store=store,
        session=session,
        webhook_url_for=unreachable_webhook,
    )
    return runtime, store
