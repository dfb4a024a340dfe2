"""`otm tui`: the Textual dashboard. Imported only by `otm tui` (otm/cmd_tui.py), so the
rest of the CLI starts without Textual."""

from otm.tui.app import OtmApp, Timings, make_app
from otm.tui.source import TenantSource

__all__ = ["OtmApp", "TenantSource", "Timings", "make_app"]
