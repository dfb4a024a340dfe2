"""One zero-work agent server for many tenants (``python -m bench.zero_agent_hub``).

bench/zero_agent.py is one Python process per tenant: 1,000 tenants would be 1,000
interpreters on a 2-vCPU machine. Here each tenant's agent, as the local runtime
starts it (``HUB_AGENT_COMMAND``), is a shell that hands its ``openclaw.json`` path to
this hub over a control connection and then execs ``sleep``; the hub opens that
tenant's webhook and gateway listeners (the same zero-work answers as zero_agent.py)
in this one process and closes them when the control connection ends (the tenant's
process exited: stopped or killed). The daemon's own path is unchanged: it spawns,
probes, and forwards to each tenant's ports as for any agent.

Receipts are shared: ``GET /otm/bench/receipts`` on any tenant's gateway port drains
every tenant's, in arrival order (one request per poll instead of one per tenant).
The hub prints ``zero agent hub listening on PORT`` once it accepts registrations.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from bench.zero_agent import Agent, Receipts

READY_LINE = "zero agent hub listening on "


def agent_command(hub_port: int) -> str:
    """OTM_AGENT_COMMAND for a tenant served by the hub on ``hub_port``: bash's
    /dev/tcp (no Python per tenant); fd 3 stays open in ``sleep``, so the hub sees the
    tenant's process end as the connection's EOF."""
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{hub_port}"
        ' && echo "$OPENCLAW_CONFIG_PATH" >&3 && read -r _ <&3'
        " && echo zero agent ready && exec sleep infinity"
    )
    return f"bash -c '{script}'"


class Hub:
    def __init__(self) -> None:
        self.receipts = Receipts()
        self.tenants = 0

    async def register(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One tenant's control connection: open its listeners, keep them until EOF."""
        servers: list[asyncio.Server] = []
        try:
            path = (await reader.readline()).decode().strip()
            config = json.loads(await asyncio.to_thread(Path(path).read_text))
            agent = Agent(config, self.receipts)
            servers.append(
                await asyncio.start_server(agent.webhook, "127.0.0.1", agent.webhook_port)
            )
            servers.append(
                await asyncio.start_server(agent.gateway, "127.0.0.1", agent.gateway_port)
            )
            self.tenants += 1
            writer.write(b"ok\n")
            await writer.drain()
            await reader.read()  # EOF: the tenant's process is gone
        except (OSError, ValueError, KeyError) as exc:
            print(f"zero agent hub: registration failed: {exc!r}", file=sys.stderr, flush=True)
        finally:
            for server in servers:
                server.close()
            if len(servers) == 2:
                self.tenants -= 1
            writer.close()


async def serve() -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hub = Hub()
    control = await asyncio.start_server(hub.register, "127.0.0.1", 0, backlog=1024)
    port = control.sockets[0].getsockname()[1]
    print(f"{READY_LINE}{port}", flush=True)
    try:
        await stop.wait()
    finally:
        control.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve()))
