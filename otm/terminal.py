"""Untrusted text (agent logs: written by tenant code) made safe for a terminal.

Escape sequences can rewrite the screen, set the window title, plant clickable
links (OSC 8), query the terminal or, on some emulators, write files; so every
ESC-introduced sequence, C1 control and other C0 control except tab is removed.
"""

from __future__ import annotations

import re

_SEQUENCES = re.compile(
    r"""
    \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?    # OSC ... BEL/ST (title, hyperlinks, clipboard)
    | \x1b[P^_X][^\x1b]*(?:\x1b\\)?       # DCS / PM / APC / SOS ... ST
    | \x1b\[[0-?]*[ -/]*[@-~]?            # CSI (colours, cursor moves, queries)
    | \x1b[ -/]*[0-~]?                    # other ESC sequences
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")


def strip_terminal_controls(text: str) -> str:
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))
