"""The gateway's Prometheus series, on the daemon's registry (one per app)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class GatewayMetrics:
    requests: Counter
    tokens: Counter
    cost: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> GatewayMetrics:
        return cls(
            requests=Counter(
                "otm_model_requests",
                "Model gateway requests by tenant, model and outcome (ok, refused, limited, "
                "upstream_error)",
                ["tenant", "model", "outcome"],
                registry=registry,
            ),
            tokens=Counter(
                "otm_model_tokens",
                "Tokens the upstream reported, by tenant, model and kind (prompt, completion)",
                ["tenant", "model", "kind"],
                registry=registry,
            ),
            cost=Counter(
                "otm_model_cost_usd",
                "Estimated cost from settings.model_prices, by tenant and model",
                ["tenant", "model"],
                registry=registry,
            ),
        )
