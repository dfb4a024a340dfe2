"""Moved: the model provider every agent is rendered with lives in daemon/openclaw_config.py
(one module for the renderer and the settings it needs). Re-exported for existing callers."""

from __future__ import annotations

from daemon.openclaw_config import API_KEY_PLACEHOLDER, PROVIDER_NAME, ModelProvider, model_provider

__all__ = ["API_KEY_PLACEHOLDER", "PROVIDER_NAME", "ModelProvider", "model_provider"]
