"""The dashboards and rules speak the contract's language: every metric they use is a SPEC metric, every SPEC
metric is on a panel, and the dashboards are provisionable Grafana JSON with the expected variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboards_exprs import (
    GRAFANA,
    SPEC,
    all_expressions,
    dashboard_expressions,
    dashboard_files,
    exposed_names,
    iter_panels,
    load_dashboard,
    load_rules,
    metric_names,
    metric_table,
    name_patterns,
    repo_metric_table,
)

# Series that exist without being SPEC metrics: Prometheus's own per-target `up`.
PROMETHEUS_SERIES = {"up"}


def contract_metrics() -> dict[str, str]:
    """The metric tables kept in the README; where the shared SPEC sits next to the clone (a developer's
    checkout, not CI's fresh clone), they must equal SPEC's."""
    table = repo_metric_table()
    if SPEC.exists():
        assert table == metric_table(SPEC.read_text()), "README's metric tables drifted from SPEC"
    return table


def test_the_contract_lists_registry_and_client_metrics() -> None:
    table = contract_metrics()
    assert "registry_instances" in table and "resilient_client_requests_total" in table
    assert len(table) == 18


def test_every_metric_used_in_dashboards_and_rules_is_a_spec_metric() -> None:
    allowed = exposed_names(contract_metrics()) | PROMETHEUS_SERIES | {rule["record"] for rule in load_rules()
                                                                        if "record" in rule}
    unknown = {(expr.where, name) for expr in all_expressions() for name in metric_names(expr.expr)
               if name not in allowed}
    assert unknown == set()


def test_every_name_pattern_matches_spec_metrics_only() -> None:
    names = exposed_names(contract_metrics())
    for expr in all_expressions():
        for pattern in name_patterns(expr.expr):
            matched = {name for name in names if re.fullmatch(pattern, name)}
            assert matched, f"{expr.where}: {pattern!r} matches no SPEC metric"


def test_every_spec_metric_is_shown_on_a_dashboard_panel() -> None:
    on_panels: set[str] = set()
    for path in dashboard_files():
        for expr in dashboard_expressions(path):
            if ": panel " in expr.where:
                on_panels |= metric_names(expr.expr)
    missing = {name for name, kind in contract_metrics().items()
               if not ({name} if kind != "histogram" else {f"{name}_bucket", f"{name}_sum", f"{name}_count"})
               & on_panels}
    assert missing == set()


def test_there_are_a_registry_and_a_client_dashboard() -> None:
    assert [path.name for path in dashboard_files()] == ["client.json", "registry.json"]


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_each_dashboard_is_provisionable_with_datasource_and_service_variables(path: Path) -> None:
    board = load_dashboard(path)
    assert board["id"] is None and board["uid"] and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {var["name"]: var for var in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    service = variables["service"]
    assert service["type"] == "query" and service["includeAll"] and service["multi"]
    assert service["allValue"] == ".*"
    assert service["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    panels = list(iter_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            if "service=" in target["expr"]:
                assert 'service=~"$service"' in target["expr"], f"{panel['title']}: filter by $service"


def _panel_titles() -> set[str]:
    return {panel["title"] for path in dashboard_files() for panel in iter_panels(load_dashboard(path)["panels"])}


def test_the_panels_the_issue_asks_for_are_there() -> None:
    titles = _panel_titles()
    expected = {
        # Registry
        "Instances by service and status", "Registrations/s", "Deregistrations/s", "Expirations/s", "Heartbeats/s",
        "Unknown heartbeats/s", "Requests/s by route", "5xx ratio by route", "Latency quantiles by route",
        "Store errors by operation",
        # Client traffic
        "Requests/s by service and outcome", "Outcome ratio", "Latency quantiles", "Failovers and retries/s",
        "Breaker state per instance", "Breaker transitions", "Discovery cache hit / stale ratio",
        "Registration and heartbeat failures",
    }
    assert expected - titles == set()


def test_panels_named_in_alert_descriptions_exist() -> None:
    titles = _panel_titles()
    for rule in load_rules():
        if "alert" not in rule:
            continue
        prose = re.sub(r"\{\{.*?\}\}", "", rule["annotations"]["description"])  # templates aside
        for quoted in re.findall(r'"([^"]+)"', prose):
            assert quoted in titles, f"{rule['alert']} points at a panel that does not exist: {quoted!r}"


def _provisioning(kind: str) -> dict[str, Any]:
    files = sorted((GRAFANA / "provisioning" / kind).glob("*.yml"))
    assert len(files) == 1
    return yaml.safe_load(files[0].read_text())  # type: ignore[no-any-return]


def test_grafana_provisioning_declares_a_prometheus_datasource_and_a_file_provider() -> None:
    datasources = _provisioning("datasources")["datasources"]
    assert [(ds["type"], ds["isDefault"]) for ds in datasources] == [("prometheus", True)]
    providers = _provisioning("dashboards")["providers"]
    assert [provider["type"] for provider in providers] == ["file"]
