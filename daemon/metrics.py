"""Prometheus metrics, one registry per daemon app (tests run several in one process).

Two registries: ``registry`` (``GET /metrics``, unauthenticated: probes and any
in-cluster scraper reach it) holds only aggregate series; ``tenant_registry``
(``GET /metrics/tenants``, admin bearer token) holds the series labelled with a
tenant id, so an anonymous caller learns neither tenant names nor their traffic.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
)

# Wakes include an agent's boot (~40 s for OpenClaw) and, on a new metal node,
# Karpenter provisioning: buckets reach 600 s.
WAKE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600)
# Phases of one agent start, on every runtime (label ``phase`` of
# ``otm_agent_start_phase_seconds``; label ``path`` is ``warm`` or ``cold``). One list so the
# local and Kubernetes runtimes, the bench and dashboards agree on the names.
PHASE_CLAIM = "claim"
"""Find and take a free pre-booted gateway (warm), or find none (cold)."""
PHASE_RESTORE = "restore"
"""Copy the tenant's snapshot (``agents/main/`` + ``workspace/``) into the agent's state dir."""
PHASE_CONFIG_WRITE = "config_write"
"""Render and write openclaw.json: warm, the atomic rewrite the gateway hot-reloads."""
PHASE_CHANNEL_UP = "channel_up"
"""Warm: config write → the tenant's webhook accepts the tenant's secret. Cold: spawn → ready."""
PHASE_FIRST_REPLY = "first_reply"
"""Ready → the agent's first reply to the waiting message (bench: the fake Bot API's
``sendMessage``; daemon: first update accepted by the agent, ``first_delivery``)."""
AGENT_START_PHASES = (
    PHASE_CLAIM,
    PHASE_RESTORE,
    PHASE_CONFIG_WRITE,
    PHASE_CHANNEL_UP,
    PHASE_FIRST_REPLY,
)
WARM, COLD = "warm", "cold"
FORWARD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The process itself, as prometheus_client's default registry has it: CPU, memory,
        # descriptors, and the collector's runs per generation (a full one pauses the loop:
        # Settings.gc_young_threshold).
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        self.webhook_requests = Counter(
            "otm_webhook_requests", "Webhook requests by HTTP status", ["status"], registry=r
        )
        self.updates_buffered = Counter(
            "otm_updates_buffered", "Updates appended to tenant buffers", registry=r
        )
        self.updates_duplicate = Counter(
            "otm_updates_duplicate",
            "Updates dropped as Telegram retries (same update_id)",
            registry=r,
        )
        self.deliveries = Counter(
            "otm_deliveries", "Updates delivered to agents and acked", registry=r
        )
        self.delivery_failures = Counter(
            "otm_delivery_failures", "Failed delivery attempts by reason", ["reason"], registry=r
        )
        self.forward_seconds = Histogram(
            "otm_forward_seconds", "Agent webhook POST latency", buckets=FORWARD_BUCKETS, registry=r
        )
        self.tenant_registry = CollectorRegistry()
        self.buffered_messages = Gauge(
            "otm_buffered_messages",
            "Updates waiting in a tenant's buffer",
            ["tenant"],
            registry=self.tenant_registry,
        )
        self.wake_phase_seconds = Histogram(
            "otm_wake_phase_seconds",
            "Duration of each wake phase",
            ["phase"],
            buckets=WAKE_BUCKETS,
            registry=r,
        )
        self.agent_start_phase_seconds = Histogram(
            "otm_agent_start_phase_seconds",
            "Duration of each phase of an agent start (AGENT_START_PHASES), warm or cold path",
            ["phase", "path"],
            buckets=WAKE_BUCKETS,
            registry=r,
        )
        self.wakes = Counter("otm_wakes", "Wakes by outcome", ["outcome"], registry=r)
        self.tenants_by_status = Gauge("otm_tenants", "Tenants by status", ["status"], registry=r)
        self.warm_pool_size = Gauge("otm_warm_pool_size", "Unclaimed warm instances", registry=r)
        self.warm_pool_target = Gauge("otm_warm_pool_target", "Warm pool target", registry=r)
        self.pod_failure_seconds = Histogram(
            "otm_pod_failure_to_registry_seconds",
            "Time from a pod failure event to its registry update",
            buckets=FORWARD_BUCKETS,
            registry=r,
        )
        self.background_task_failures = Counter(
            "otm_background_task_failures", "Background task crashes by task", ["task"], registry=r
        )
        self.audit_entries_lost = Counter(
            "otm_audit_entries_not_stored",
            "Admin audit entries Redis did not take (each is logged at ERROR instead)",
            registry=r,
        )
        self.is_leader = Gauge("otm_is_leader", "1 while this replica holds leadership", registry=r)
        self.polling_tenants = Gauge(
            "otm_polling_tenants",
            "Tenants whose updates this replica fetches with getUpdates (poll leases held)",
            registry=r,
        )
        # labels() hashes and locks on every call; the hot path (one answer, one buffer
        # length per update) keeps the children it has already resolved.
        self._webhook_children: dict[int, Any] = {}
        self._buffered_children: dict[str, Any] = {}

    def count_webhook_answer(self, status: int) -> None:
        child = self._webhook_children.get(status)
        if child is None:
            child = self.webhook_requests.labels(status=str(status))
            self._webhook_children[status] = child
        child.inc()

    def set_buffered(self, tenant_id: str, length: int) -> None:
        """``otm_buffered_messages{tenant}``."""
        child = self._buffered_children.get(tenant_id)
        if child is None:
            child = self.buffered_messages.labels(tenant=tenant_id)
            self._buffered_children[tenant_id] = child
        child.set(length)
