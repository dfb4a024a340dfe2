"""/metrics after a wake and a delivery: the series the dashboard uses exist and hold
plausible values (wake phases, buffers, deliveries, tenants by status, warm pool)."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from otm.devtools.fake_telegram import FakeTelegram
from tests.e2e.harness import Daemon
from tests.support.polling import eventually

WAKE_PHASES = ("lock", "registry", "runtime_start", "ready", "first_delivery")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


async def test_metrics_after_a_wake_and_a_delivery(daemon: Daemon, telegram: FakeTelegram) -> None:
    secret = await daemon.create_tenant("metered", "570:metrics")
    held = await daemon.create_tenant("held", "571:metrics")
    status, _ = await daemon.api("POST", "/v1/tenants/held/suspend")
    assert status == 200
    await daemon.send_text("metered", secret, 1, 8, "hi")
    await daemon.send_text("held", held, 1, 8, "later")
    await telegram.wait_for_messages("570:metrics", 2, 30, chat_id=8)

    async def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = await daemon.api("GET", "/metrics")
        assert status == 200
        return samples(text)

    async def settled() -> bool:
        m = await scraped()
        return (
            m.get(("otm_tenants", (("status", "running"),))) == 1.0
            and m.get(("otm_deliveries_total", ())) == 1.0
        )

    await eventually(settled, 15, "the tenant gauge and the delivery counter")
    m = await scraped()
    for phase in WAKE_PHASES:
        count = value(m, "otm_wake_phase_seconds_count", phase=phase)
        total = value(m, "otm_wake_phase_seconds_sum", phase=phase)
        assert count == 1.0, phase
        assert 0.0 <= total < 30.0, (phase, total)
        # Buckets reach 600 s (a cold wake on a new node); +Inf holds every observation.
        assert value(m, "otm_wake_phase_seconds_bucket", phase=phase, le="600.0") == 1.0
        assert value(m, "otm_wake_phase_seconds_bucket", phase=phase, le="+Inf") == 1.0
    # The agent's boot ("ready") dominates the control-plane phases.
    assert value(m, "otm_wake_phase_seconds_sum", phase="ready") > value(
        m, "otm_wake_phase_seconds_sum", phase="registry"
    )
    assert value(m, "otm_wakes_total", outcome="ok") == 1.0
    assert value(m, "otm_webhook_requests_total", status="200") == 2.0
    assert value(m, "otm_updates_buffered_total") == 2.0
    assert value(m, "otm_updates_duplicate_total") == 0.0
    assert value(m, "otm_deliveries_total") == 1.0
    assert value(m, "otm_forward_seconds_count") == 1.0
    assert 0.0 < value(m, "otm_forward_seconds_sum") < 15.0
    assert value(m, "otm_buffered_messages", tenant="metered") == 0.0
    assert value(m, "otm_buffered_messages", tenant="held") == 1.0
    assert value(m, "otm_tenants", status="running") == 1.0
    assert value(m, "otm_tenants", status="suspended") == 1.0
    assert value(m, "otm_tenants", status="idle") == 0.0
    assert value(m, "otm_tenants", status="failed") == 0.0
    assert value(m, "otm_warm_pool_size") == 0.0  # the local runtime has no warm pool
    assert value(m, "otm_is_leader") == 1.0
    status, text = await daemon.api("GET", "/metrics")
    # Declared even before the first failure, so dashboards and alerts find the family.
    assert re.search(r"^# TYPE otm_delivery_failures_total counter$", text, re.M)
    assert re.search(r"^# TYPE otm_pod_failure_to_registry_seconds histogram$", text, re.M)
