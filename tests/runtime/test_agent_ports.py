"""Local agents' ports come from ``local_agent_ports`` (outside the ephemeral range), never
one something listens on, never one handed out to a wake that may not have bound it yet."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from daemon.adapters.local.agent_ports import AgentPorts, NoFreeAgentPort, ephemeral_range
from daemon.settings import Settings, SettingsError, load_settings
from otm.devtools.fake_telegram import FakeTelegram
from tests.support.local_runtime import local_runtime_settings, new_local_runtime
from tests.support.records import sample_launch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def free_range(width: int) -> tuple[int, int]:
    """``width`` consecutive ports below the default range's start that nothing listens on."""
    for low in range(15000, 19000, width):
        if all(_bindable(p) for p in range(low, low + width)):
            return low, low + width - 1
    pytest.skip("no free run of loopback ports")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    yield sock
    sock.close()


def test_the_default_range_is_outside_the_kernels_ephemeral_range() -> None:
    ports = AgentPorts.from_setting(Settings().local_agent_ports, hold_s=300)
    ephemeral = ephemeral_range()
    if ephemeral is None:
        pytest.skip("no /proc ephemeral range here")
    assert ports.high < ephemeral[0] or ports.low > ephemeral[1]
    taken = ports.take(2)
    assert len(set(taken)) == 2
    assert all(ports.low <= p <= ports.high for p in taken)


def test_a_listening_port_is_never_handed_out(listener: socket.socket) -> None:
    low, high = free_range(2)
    listener.bind(("127.0.0.1", low))
    listener.listen()
    ports = AgentPorts(low, high, hold_s=0)  # hold nothing: each take may pick either
    assert {ports.take(1)[0] for _ in range(20)} == {high}


def test_a_handed_out_port_is_held_until_its_agent_had_time_to_bind_it() -> None:
    low, high = free_range(2)
    clock = Clock()
    ports = AgentPorts(low, high, hold_s=300, clock=clock)
    first = ports.take(2)
    # Nothing bound them yet (the agents are still starting): a second wake gets none.
    with pytest.raises(NoFreeAgentPort, match=f"{low}-{high}"):
        ports.take(1)
    clock.now += 301
    assert sorted(ports.take(2)) == sorted(first)


@pytest.mark.parametrize("text", ["20000", "20000-", "x-y", "900-2000", "3000-2000", "1-70000"])
def test_a_bad_range_is_a_settings_error(text: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="local_agent_ports"):
        load_settings(env={"OTM_LOCAL_AGENT_PORTS": text, "OTM_DATA_DIR": str(tmp_path)})


def test_an_overlap_with_the_ephemeral_range_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    ephemeral = ephemeral_range()
    if ephemeral is None:
        pytest.skip("no /proc ephemeral range here")
    AgentPorts.from_setting(f"{ephemeral[0]}-{ephemeral[0] + 100}", hold_s=1)
    assert "overlaps the kernel's ephemeral port range" in caplog.text


async def test_a_local_agent_listens_on_ports_of_the_configured_range(tmp_path: Path) -> None:
    low, high = free_range(8)
    async with FakeTelegram() as telegram:
        settings = local_runtime_settings(
            tmp_path, telegram.base_url, local_agent_ports=f"{low}-{high}"
        )
        async with aiohttp.ClientSession() as session:
            runtime, _ = new_local_runtime(settings, session)
            try:
                launch = sample_launch("portrange")
                await runtime.start(launch)
                instance = await runtime.wait_ready(launch.tenant_id, 20.0)
                for url in (instance.webhook_url, instance.gateway_url):
                    assert url is not None
                    port = URL(url).port
                    assert port is not None and low <= port <= high, url
                    assert not _bindable(port)  # the agent itself holds it
            finally:
                await runtime.close()
