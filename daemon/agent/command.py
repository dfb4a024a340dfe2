"""The local runtime's agent command, made independent of the agent's working directory.

Agents run with ``cwd`` = their own run directory, so a command written relative
to where the operator started the daemon (``.tools/openclaw/.../node ...``, as the
README shows) would not be found there. Every word that names an existing path
relative to the daemon's working directory is made absolute once, at startup.
A command that still cannot be started is a :class:`WakeImpossible` error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from daemon.wake_errors import WakeImpossible


def resolve_agent_command(words: Sequence[str], cwd: Path) -> tuple[str, ...]:
    """Relative paths (``a/b``, ``./x``) that exist under ``cwd`` become absolute;
    bare names (``node``) stay for ``PATH`` lookup, options stay as they are."""
    resolved: list[str] = []
    for word in words:
        looks_like_path = "/" in word and not word.startswith("-") and not os.path.isabs(word)
        if looks_like_path and (cwd / word).exists():
            # abspath, not resolve(): a venv python is a symlink that must stay one.
            resolved.append(os.path.abspath(cwd / word))
        else:
            resolved.append(word)
    return tuple(resolved)


def command_not_startable(command: Sequence[str], exc: OSError) -> WakeImpossible:
    """The operator-facing reason an agent command could not be executed."""
    why = exc.strerror or type(exc).__name__
    return WakeImpossible(
        f"cannot start the agent command {command[0]!r}: {why} "
        "(OTM_AGENT_COMMAND; relative paths resolve against the daemon's working directory)"
    )
