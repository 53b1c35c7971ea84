"""Every metric the registry and the client export, read from the code's own registries, is on a dashboard
panel or in an alert rule, and in the docs; and the dashboards and rules use no other."""

from __future__ import annotations

import re

from tests.support.dashboards_exprs import REPO, all_expressions, code_metrics, load_rules, metric_names

PROMETHEUS_SERIES = {"up"}  # Prometheus's own per-target series


def series_names(name: str, kind: str) -> set[str]:
    """The series Prometheus stores for a metric."""
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}


def test_the_code_exports_registry_client_process_and_python_metrics() -> None:
    names = code_metrics()
    assert {"registry_instances", "registry_watch_duration_seconds", "resilient_client_requests_total",
            "process_cpu_seconds_total", "python_info"} <= names.keys()
    assert names["registry_watch_duration_seconds"] == "histogram"


def test_every_exported_metric_is_on_a_dashboard_panel_or_in_an_alert_rule() -> None:
    alerts = {f"rules.yml: {rule['alert']}" for rule in load_rules() if "alert" in rule}
    used: set[str] = set()
    for expr in all_expressions():
        if ": panel " in expr.where or expr.where in alerts:
            used |= metric_names(expr.expr)
    assert {name for name, kind in code_metrics().items() if not series_names(name, kind) & used} == set()


def test_every_exported_metric_is_in_the_docs() -> None:
    pages = "\n".join(page.read_text() for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    assert {name for name in code_metrics() if not re.search(rf"`{name}(?:\{{[^`]*\}})?`", pages)} == set()


def test_dashboards_and_rules_use_only_exported_metrics() -> None:
    known = set().union(*(series_names(name, kind) for name, kind in code_metrics().items()))
    allowed = known | PROMETHEUS_SERIES | {rule["record"] for rule in load_rules() if "record" in rule}
    unknown = {(expr.where, name) for expr in all_expressions() for name in metric_names(expr.expr)
               if name not in allowed}
    assert unknown == set()
