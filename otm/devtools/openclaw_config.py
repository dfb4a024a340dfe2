"""Moved to :mod:`daemon.agent.openclaw_config` (the daemon renders every agent's config); this
re-export keeps the devtools' and tests' imports working."""

from daemon.agent.openclaw_config import (
    DEFAULT_WEBHOOK_PATH,
    DmPolicy,
    GatewayBind,
    GatewayTuning,
    ModelProvider,
    render_bound_config,
    render_openclaw_config,
    render_warm_config,
)

__all__ = [
    "DEFAULT_WEBHOOK_PATH",
    "DmPolicy",
    "GatewayBind",
    "GatewayTuning",
    "ModelProvider",
    "render_bound_config",
    "render_openclaw_config",
    "render_warm_config",
]
