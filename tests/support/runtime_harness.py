"""What the Runtime contract suite (tests/runtime/) gets from each adapter's factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from daemon.ports import AgentLaunch, Runtime, StateStore
from otm.devtools.fake_telegram import FakeTelegram


@dataclass
class RuntimeHarness:
    runtime: Runtime
    state_store: StateStore
    telegram: FakeTelegram
    reachable: bool
    """The test process can POST to an instance's webhook_url and GET its gateway."""
    crash: Callable[[str], Awaitable[None]] | None
    """Kill a tenant's agent the hard way (None: the adapter cannot inject a crash)."""
    set_agent_env: Callable[[str, str], None]
    """Set an env variable (a stand-in agent knob such as OTM_AGENT_BOOT_DELAY_S) for the
    agents this harness starts from now on: handed to the adapter explicitly, as each
    adapter passes env to its agents (the k8s fake's kubelet does not read the test's env)."""

    @staticmethod
    def launch(tenant_id: str, bot_id: int = 4242) -> AgentLaunch:
        return AgentLaunch(
            tenant_id=tenant_id,
            bot_token=f"{bot_id}:contract",
            webhook_secret=f"secret-{tenant_id}",
            gateway_token=f"gw-{tenant_id}",
            hooks_token=f"hooks-{tenant_id}",
        )
