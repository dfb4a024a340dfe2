"""deploy/grafana/otm-dashboard.json: valid JSON, and every PromQL expression refers
only to metric names the daemon exports (and every exported family has a panel)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from daemon.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "otm-dashboard.json"
# otm's own series, and the process and garbage-collector series every replica exports.
METRIC_NAME = re.compile(r"\b((?:otm|process|python_gc)_[a-z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def exported_names() -> dict[str, str]:
    """Sample name → family name, as Prometheus scrapes them from /metrics and (with the
    admin token) /metrics/tenants."""
    names: dict[str, str] = {}
    metrics = Metrics()
    for family in [*metrics.registry.collect(), *metrics.tenant_registry.collect()]:
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_dashboard_is_valid_and_uses_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables
    exported = exported_names()
    used: set[str] = set()
    for title, expr in expressions(dashboard):
        names = METRIC_NAME.findall(expr)
        assert names, f"{title}: {expr} uses no metric of the daemon's"
        unknown = [n for n in names if n not in exported]
        assert not unknown, f"{title}: {expr} uses metrics the daemon does not export: {unknown}"
        used.update(exported[n] for n in names)
        assert expr.count("(") == expr.count(")"), f"{title}: unbalanced {expr}"
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    assert used == set(exported.values()), (
        f"families without a panel: {set(exported.values()) - used}"
    )
