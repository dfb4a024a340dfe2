from __future__ import annotations

from daemon.agent_model import API_KEY_PLACEHOLDER, model_provider
from daemon.settings import Settings


def test_no_base_url_renders_no_provider() -> None:
    assert model_provider(Settings(agent_model_api_key="sk-unused")) is None


def test_provider_from_settings() -> None:
    provider = model_provider(
        Settings(
            agent_model_base_url="http://127.0.0.1:8000/v1/",
            agent_model_id="llama",
            agent_model_api_key="sk-1",
        )
    )
    assert provider is not None
    assert (provider.name, provider.base_url, provider.model_id, provider.api_key) == (
        "otm",
        "http://127.0.0.1:8000/v1",
        "llama",
        "sk-1",
    )
    assert provider.primary == "otm/llama"


def test_a_server_without_auth_gets_a_placeholder_key() -> None:
    provider = model_provider(Settings(agent_model_base_url="http://127.0.0.1:8000/v1"))
    assert provider is not None
    assert (provider.model_id, provider.api_key) == ("default", API_KEY_PLACEHOLDER)
