"""The agent model provider on Kubernetes: rendered into the tenant Secret, never pod env."""

from __future__ import annotations

import base64
import json

from daemon.agent.openclaw_config import model_provider
from daemon.kube import names
from daemon.kube.client import call_json
from daemon.kube.manifests import env_values
from daemon.settings import Settings
from tests.k8s_runtime.support import NS, api_pods, open_runtime
from tests.support.fake_k8s.fixture import FakeK8s
from tests.support.records import sample_launch as launch

MODEL_KEY = "sk-cluster-model-key"
TENANT_KEY = "otm-mk-mia.k1.mac"


async def test_model_key_is_in_the_secret_config_and_not_in_the_pod(k8s: FakeK8s) -> None:
    settings = Settings(
        agent_model_base_url="http://models.internal:8000/v1/",
        agent_model_id="qwen-7b",
        agent_model_api_key=MODEL_KEY,
        model_gateway_url="http://otm-model-gateway.otm-system.svc:8082/v1",
    )
    async with open_runtime(k8s.kubeconfig_path) as runtime:
        runtime.model_provider = model_provider(settings)
        await runtime.start(launch("mia", model_key=TENANT_KEY))
        await runtime.wait_ready("mia", timeout=10)

        body = await call_json(
            runtime.core.read_namespaced_secret, names.tenant_secret_name("mia"), NS
        )
        config = json.loads(base64.b64decode(body["data"]["openclaw.json"]))
        assert config["agents"]["defaults"]["model"]["primary"] == "otm/qwen-7b"
        provider = config["models"]["providers"]["otm"]
        assert (provider["baseUrl"], provider["apiKey"]) == (
            "http://otm-model-gateway.otm-system.svc:8082/v1",
            TENANT_KEY,
        )
        # The provider credential is the daemon's alone: nowhere in the Secret.
        assert MODEL_KEY not in json.dumps(body) + json.dumps(config)

        (pod,) = await api_pods(runtime, "otm/tenant=mia")
        assert not [v for v in env_values(pod) if TENANT_KEY in v or MODEL_KEY in v]
        assert MODEL_KEY not in json.dumps(pod) and TENANT_KEY not in json.dumps(pod)
