"""Confinement of local agents: an allow-listed environment and a bubblewrap sandbox.

A tenant's agent runs tools chosen by a language model on behalf of whoever
writes to its bot, so the local runtime treats it as hostile:

- Environment: only an allow-list reaches the agent (PATH, LANG/LC_*, TZ, proxy
  and CA variables, ``NODE_*``, ``OPENCLAW_*``, the agent's own ``OTM_AGENT_*``
  knobs); never the daemon's settings or cloud credentials (``AWS_*`` …).
- Filesystem and processes (``agent_sandbox`` = ``bwrap``, or ``auto`` when
  bubblewrap works here): the agent sees the host read-only, an empty tmpfs over
  ``/tmp``, over the whole data directory (registry, admin token, Redis
  password, every other tenant) and over well-known credential stores in the
  daemon user's home (``~/.aws``, ``~/.ssh``, ``~/.kube`` …), and only its own run
  directory writable. Everything else the daemon's user can read stays readable. It
  gets its own user and PID namespaces: an unprivileged uid with no
  capabilities, and a ``/proc`` that shows only its own processes (not the
  daemon's environment). The network is shared: the agent must reach its model,
  Telegram and the daemon's forwards on loopback; Redis and the admin API are
  password/token protected for that reason.
- ``none`` (or ``auto`` without a working bubblewrap): the environment is still
  filtered, but the agent runs as the daemon's uid with the daemon's view of
  the filesystem; a loud warning says so at start-up.

Signals: the runtime stops an agent with SIGTERM to its process group, then
waits for it to exit. bubblewrap's outer process would die on SIGTERM at once
(and take the agent with it), so it runs with SIGTERM ignored, and ``env
--default-signal=TERM`` restores the default for the agent inside. The agent
still receives the group's SIGTERM directly (same process group), exits in its
own time, and bubblewrap exits with its status.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

SandboxMode = Literal["auto", "bwrap", "none"]

ALLOWED_ENV = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "PYTHONPATH",
    }
)
ALLOWED_ENV_PREFIXES = ("LC_", "NODE_", "OPENCLAW_")
AGENT_KNOB_PREFIX = "OTM_AGENT_"
"""``OTM_AGENT_*`` variables that are not daemon settings are knobs for the agent."""

SANDBOX_UID = 65534
"""The agent's uid inside its user namespace ("nobody"): no capabilities there."""
HIDDEN_DIRS = ("/tmp",)
"""Host directories replaced by an empty tmpfs besides the data directory."""
HIDDEN_HOME_ENTRIES = (
    ".aws",
    ".azure",
    ".config/gcloud",
    ".docker",
    ".kube",
    ".ssh",
    ".git-credentials",
    ".netrc",
    ".pgpass",
)
"""Well-known credential stores in the daemon user's home, hidden when they exist (the
rest of the host stays readable: the agent's own command may live under that home)."""


class SandboxUnavailable(RuntimeError):
    pass


def agent_environment(
    parent: Mapping[str, str], daemon_setting_vars: frozenset[str]
) -> dict[str, str]:
    """The allow-listed part of the daemon's environment an agent may inherit."""
    out: dict[str, str] = {}
    for key, value in parent.items():
        if (
            key in ALLOWED_ENV
            or key.startswith(ALLOWED_ENV_PREFIXES)
            or (key.startswith(AGENT_KNOB_PREFIX) and key not in daemon_setting_vars)
        ):
            out[key] = value
    return out


@functools.cache
def bwrap_works(binary: str = "bwrap") -> str | None:
    """Why bubblewrap cannot confine agents here, or None when it can (probed once:
    user namespaces may be disabled, e.g. in unprivileged containers)."""
    path = shutil.which(binary)
    if path is None:
        return f"{binary!r} not found (Debian/Ubuntu: apt-get install -y bubblewrap)"
    probe = [path, *_base_args(), "--", "env", "--default-signal=TERM", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap probe failed: {exc}"
    if done.returncode != 0:
        return f"bubblewrap probe failed: {done.stderr.decode(errors='replace').strip()}"
    return None


def _base_args() -> list[str]:
    return [
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--proc", "/proc",
        "--die-with-parent",
    ]  # fmt: skip


@dataclass(frozen=True)
class AgentSandbox:
    """How agent commands are wrapped; ``resolve`` picks it from the settings."""

    mode: Literal["bwrap", "none"]
    data_dir: Path
    bwrap: str = "bwrap"

    @classmethod
    def resolve(cls, setting: SandboxMode, data_dir: Path) -> AgentSandbox:
        if setting == "none":
            log.warning(
                "agent_sandbox=none: agents run UNCONFINED with the daemon's uid; any "
                "tenant's agent can read every tenant's files under %s",
                data_dir,
            )
            return cls("none", data_dir)
        reason = bwrap_works()
        if reason is None:
            return cls("bwrap", data_dir, shutil.which("bwrap") or "bwrap")
        if setting == "bwrap":
            raise SandboxUnavailable(f"agent_sandbox=bwrap: {reason}")
        log.warning(
            "AGENTS ARE NOT SANDBOXED (agent_sandbox=auto): %s. Every tenant's agent runs "
            "with the daemon's uid and can read every tenant's files under %s and the "
            "admin token. Install bubblewrap or set agent_sandbox=none to acknowledge.",
            reason,
            data_dir,
        )
        return cls("none", data_dir)

    def command(
        self, command: Sequence[str], run_dir: Path, readable: Sequence[str] = ()
    ) -> list[str]:
        """``command`` wrapped so that it runs confined to ``run_dir``. ``readable``: more
        paths the agent must read (its PYTHONPATH), kept visible read-only when they lie
        under a hidden directory."""
        if self.mode == "none":
            return list(command)
        data_dir = str(self.data_dir.resolve())
        hidden = [*HIDDEN_DIRS, data_dir]
        args = [*_base_args()]
        for path in hidden:
            args += ["--tmpfs", path]
        home = Path.home()
        for entry in HIDDEN_HOME_ENTRIES:
            target = home / entry
            if target.is_dir() and not target.is_symlink():
                args += ["--tmpfs", str(target)]
            elif target.is_file() and not target.is_symlink():
                args += ["--ro-bind", "/dev/null", str(target)]
        # A command (or its code) living under a hidden directory stays readable: a checkout
        # in /tmp with its venv, say. The whole top entry under /tmp is shown read-only (a
        # venv's python needs its lib/ beside bin/); the data directory stays hidden below.
        for root in _exposed_roots([*command, *readable], HIDDEN_DIRS, data_dir):
            args += ["--ro-bind", root, root]
        args += ["--tmpfs", data_dir]
        run = str(run_dir.resolve())
        args += ["--bind", run, run, "--chdir", run]
        # SIGTERM ignored by bubblewrap itself, default again for the agent (see module doc).
        return [
            "/bin/sh",
            "-c",
            'trap "" TERM; exec "$0" "$@"',
            self.bwrap,
            *args,
            "--",
            "env",
            "--default-signal=TERM",
            *command,
        ]


def _exposed_roots(paths: Sequence[str], hidden: Sequence[str], data_dir: str) -> list[str]:
    """For each existing absolute path under a hidden directory (and not in the data
    directory): the hidden directory's entry that holds it (``/tmp/x/a/b`` -> ``/tmp/x``)."""
    roots: list[str] = []
    for path in paths:
        if not (os.path.isabs(path) and os.path.exists(path)) or _under(path, [data_dir]):
            continue
        for top in hidden:
            if _under(path, [top]) and path != top:
                first = os.path.relpath(path, top).split(os.sep)[0]
                root = os.path.join(top, first)
                if not _under(data_dir, [root]) and root not in roots:
                    roots.append(root)
                elif _under(data_dir, [root]) and path not in roots:
                    roots.append(path)  # the data dir lives in that entry: only the path
    return roots


def _under(path: str, dirs: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)
