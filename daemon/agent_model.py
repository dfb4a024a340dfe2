"""The model provider every tenant's agent is rendered with, from the daemon's settings.

One deployment-wide OpenAI-compatible server (``agent_model_base_url``) becomes the custom
provider ``otm`` in each tenant's openclaw.json, and ``otm/<agent_model_id>`` its primary
model. The API key travels only inside that file: a 0600 file next to the local agent's
state dir, or the tenant's Secret (mounted config, or the bind request of a warm pod) on
Kubernetes; never a plain env value of a pod spec, never a log line.
"""

from __future__ import annotations

from daemon.settings import Settings
from otm.devtools.openclaw_config import ModelProvider

PROVIDER_NAME = "otm"
API_KEY_PLACEHOLDER = "no-key"
"""Rendered when no key is set: OpenClaw expects some ``apiKey`` for a custom provider, and
servers without auth (a local vLLM, Ollama, the stub) ignore it."""


def model_provider(settings: Settings) -> ModelProvider | None:
    """The provider to render, or None when no model server is configured."""
    if not settings.agent_model_base_url:
        return None
    return ModelProvider(
        name=PROVIDER_NAME,
        base_url=settings.agent_model_base_url.rstrip("/"),
        model_id=settings.agent_model_id,
        api_key=settings.agent_model_api_key or API_KEY_PLACEHOLDER,
    )
