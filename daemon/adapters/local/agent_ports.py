"""Loopback ports for local agents, taken outside the kernel's ephemeral port range.

A port picked with ``bind(0)`` comes from the ephemeral range, the range every outgoing
connection on the host takes its local port from. Between that pick and the agent's own
``listen`` (a process start later: seconds for OpenClaw) an outgoing connection could take
the port, and the agent died with ``EADDRINUSE`` (1 wake in 1,000 in ``bench.hot_path
--tenants 1000``). Outside that range only listeners take ports: a bind test finds those
already listening, and the ports handed out recently stay ours until their agent has had
the time to bind them (``hold_s``), so two wakes in a row never get the same one.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daemon.settings import parse_port_range

log = logging.getLogger(__name__)

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
MAX_PROBES = 200
"""Random picks tried before giving up (a range this full is a configuration error)."""


class NoFreeAgentPort(RuntimeError):
    """Every port of ``local_agent_ports`` is listening or was just handed out."""


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's ephemeral port range (Linux), or None where it cannot be read."""
    try:
        low, high = path.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _listening(port: int) -> bool:
    """Whether something holds ``port`` on 127.0.0.1 (a listener, or connections of one
    that just exited: the agent's own bind, without SO_REUSEADDR, would fail too)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


@dataclass
class AgentPorts:
    low: int
    high: int
    hold_s: float
    """How long a handed-out port stays ours before its agent must have bound it (the
    longest a local wake may take)."""
    clock: Callable[[], float] = time.monotonic
    _handed_out: dict[int, float] = field(default_factory=dict)
    _random: random.Random = field(default_factory=random.SystemRandom)

    @classmethod
    def from_setting(cls, text: str, *, hold_s: float) -> AgentPorts:
        low, high = parse_port_range(text)
        ephemeral = ephemeral_range()
        if ephemeral is not None and low <= ephemeral[1] and ephemeral[0] <= high:
            log.warning(
                "local_agent_ports %d-%d overlaps the kernel's ephemeral port range %d-%d: "
                "an outgoing connection can take an agent's port before the agent binds it",
                low, high, *ephemeral,
            )  # fmt: skip
        return cls(low, high, hold_s)

    def take(self, count: int) -> list[int]:
        """``count`` distinct ports nothing listens on and none handed out in the last
        ``hold_s``; raises NoFreeAgentPort after MAX_PROBES random picks."""
        now = self.clock()
        self._handed_out = {p: t for p, t in self._handed_out.items() if now - t < self.hold_s}
        ports: list[int] = []
        for _ in range(MAX_PROBES):
            port = self._random.randint(self.low, self.high)
            if port in self._handed_out or port in ports or _listening(port):
                continue
            ports.append(port)
            if len(ports) == count:
                self._handed_out.update(dict.fromkeys(ports, now))
                return ports
        raise NoFreeAgentPort(
            f"no free port in local_agent_ports {self.low}-{self.high} after {MAX_PROBES} tries "
            f"({len(self._handed_out)} handed out in the last {self.hold_s:.0f} s)"
        )
