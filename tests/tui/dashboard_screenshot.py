"""Screenshot of `otm tui` over a real daemon with twenty tenants in mixed states.

    python -m tests.tui.dashboard_screenshot docs/tui-dashboard.svg [--png docs/tui-dashboard.png]

Starts a private redis-server and `python -m daemon` (local runtime, the stand-in agent
via tests/tui/demo_agent.py), creates the tenants through the admin API, wakes some
(really: agent processes), lets two fail to start, leaves two booting, suspends two
with buffered messages, then saves the dashboard as SVG (and PNG with rsvg-convert,
from Debian's librsvg2-bin, when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otm.client import resolve_target
from otm.tui import make_app
from otm.tui.api_source import ApiTenantSource
from tests.support.admin_calls import api
from tests.support.daemon_proc import DaemonProc, daemon_env, running_daemon
from tests.support.servers import project_env, python_cmd, running_redis
from tests.tui.conftest import FAST
from tests.tui.fake_source import MIXED_BUFFERS, mixed_tenants

RUNNING = ("acme-support", "bakery-bot", "dune-coffee", "echo-dental", "garden-club",
           "juniper-vet", "maple-dental", "orbit-cafe")  # fmt: skip
FAILING = ("delta-fitness", "lumen-optics")
SLOW = ("blue-harbor", "ivy-books")
SUSPENDED = ("cedar-legal", "nova-robotics")
SIZE = (120, 34)


def populate(daemon: DaemonProc) -> None:
    assert (
        api(daemon, "PATCH", "/v1/config", {"max_wake_attempts": 1, "warm_pool_target": 2})[0]
        == 200
    )
    for number, record in enumerate(mixed_tenants(), start=7001):
        body: dict[str, Any] = {
            "tenant_id": record.tenant_id,
            "labels": record.labels,
            "bot_token": f"{number}:demo-{record.tenant_id}",  # fake Telegram only
        }
        if record.idle_timeout_s is not None:
            body["idle_timeout_s"] = record.idle_timeout_s
        status, answer = api(daemon, "POST", "/v1/tenants", body)
        assert status == 201, answer
    for tenant_id in RUNNING:
        status, answer = api(daemon, "POST", f"/v1/tenants/{tenant_id}/wake?wait=true")
        assert status == 200, answer
    for tenant_id in FAILING:
        status, answer = api(daemon, "POST", f"/v1/tenants/{tenant_id}/wake?wait=true")
        assert status == 503, answer
    for tenant_id in SUSPENDED:
        assert api(daemon, "POST", f"/v1/tenants/{tenant_id}/suspend")[0] == 200
        for i in range(MIXED_BUFFERS[tenant_id]):
            status, answer = api(
                daemon, "POST", f"/v1/tenants/{tenant_id}/simulate", {"text": f"hello {i}"}
            )
            assert status == 202, answer
    for tenant_id in SLOW:
        assert api(daemon, "POST", f"/v1/tenants/{tenant_id}/wake")[0] == 202


async def screenshot(daemon: DaemonProc, out: Path) -> None:
    async with ApiTenantSource(resolve_target(data_dir=daemon.data_dir, env={})) as source:
        app = make_app(source, readonly=False, timings=FAST)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(300):  # bounded: 30 s
                statuses = {t.get("status") for t in app.tenants.values()}
                if (
                    len(app.tenants) == 20
                    and {"running", "failed", "provisioning", "suspended"} <= statuses
                    and app.status is not None
                    and len(app.buffered) == 20
                    and not app.dirty
                ):
                    break
                await pilot.pause(0.1)
            else:
                raise RuntimeError("the dashboard never showed all twenty tenants")
            app.save_screenshot(filename=out.name, path=str(out.parent))


def to_png(svg: Path, png: Path) -> None:
    """rsvg-convert drops leading no-break spaces and has no Fira Code: keep the spaces
    and size DejaVu Sans Mono to Textual's 12.2 px cell."""
    converter = shutil.which("rsvg-convert")
    if converter is None:
        raise SystemExit("rsvg-convert not found (apt-get install librsvg2-bin)")
    text = svg.read_text()
    text = text.replace("font-size: 20px", "font-size: 20.26px")
    text = re.sub(r"<svg ", '<svg xml:space="preserve" ', text, count=1)
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False) as fixed:
        fixed.write(text)
    try:
        subprocess.run([converter, fixed.name, "-o", str(png)], check=True)
    finally:
        Path(fixed.name).unlink()


@contextmanager
def fake_telegram() -> Iterator[str]:
    """The fake Bot API in its own process: webhooks and notices never reach Telegram."""
    process = subprocess.Popen(
        python_cmd("-m", "otm.devtools.fake_telegram", "--port", "0"),
        env=project_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake Telegram did not start: {url!r}")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("svg", type=Path)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_redis(Path(tmp) / "redis") as redis,
        fake_telegram() as telegram_url,
    ):
        data_dir = Path(tmp) / "otm"
        env = daemon_env(
            data_dir,
            OTM_REDIS_URL=redis.url,
            OTM_TELEGRAM_API_BASE=telegram_url,
            OTM_ADMIN_PORT="0",
            OTM_ROUTER_PORT="0",
            OTM_AGENT_COMMAND=f"{sys.executable} -m tests.tui.demo_agent",
            OTM_AGENT_FAIL_TENANTS=",".join(FAILING),
            OTM_AGENT_SLOW_TENANTS=",".join(SLOW),
        )
        with running_daemon(data_dir, env=env) as daemon:
            populate(daemon)
            asyncio.run(screenshot(daemon, args.svg))
    if args.png is not None:
        to_png(args.svg, args.png)


if __name__ == "__main__":
    main()
