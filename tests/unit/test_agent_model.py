from __future__ import annotations

from daemon.agent.openclaw_config import API_KEY_PLACEHOLDER, model_provider
from daemon.settings import Settings

GATEWAY = "http://127.0.0.1:8082/v1/"


def test_no_upstream_renders_no_provider() -> None:
    settings = Settings(agent_model_api_key="sk-unused", model_gateway_url=GATEWAY)
    assert model_provider(settings, "otm-mk-a.b.c") is None


def test_provider_is_the_gateway_with_the_tenant_key() -> None:
    provider = model_provider(
        Settings(
            agent_model_base_url="http://127.0.0.1:8000/v1/",
            agent_model_id="llama",
            agent_model_api_key="sk-upstream",
            model_gateway_url=GATEWAY,
        ),
        "otm-mk-alice.k1.mac",
    )
    assert provider is not None
    assert (provider.name, provider.base_url, provider.model_id, provider.api_key) == (
        "otm",
        "http://127.0.0.1:8082/v1",
        "llama",
        "otm-mk-alice.k1.mac",
    )
    assert provider.primary == "otm/llama"


def test_bedrock_upstream_also_renders_the_gateway() -> None:
    provider = model_provider(Settings(model_upstream="bedrock", model_gateway_url=GATEWAY))
    assert provider is not None
    assert (provider.base_url, provider.api_key) == (
        "http://127.0.0.1:8082/v1",
        API_KEY_PLACEHOLDER,
    )
