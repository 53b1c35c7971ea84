"""What the dashboards and rules ask of Prometheus: every PromQL expression, and the metric names in them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from registry_server.metrics import RegistryMetrics
from resilient_client.metrics import client_metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
GRAFANA = DASHBOARDS / "grafana"
RULES = DASHBOARDS / "prometheus" / "rules.yml"
RULES_TEST = DASHBOARDS / "prometheus" / "rules_test.yml"


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it comes from (for failure messages)."""

    where: str
    expr: str


def dashboard_files() -> list[Path]:
    return sorted(GRAFANA.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def variable_query_as_promql(query: str) -> str:
    """Grafana's ``label_values(selector, label)`` as the PromQL that returns those label values."""
    match = _LABEL_VALUES.match(query.strip())
    if match is None:
        raise ValueError(f"unsupported variable query {query!r}")
    selector = match["selector"] or "up"
    return f"count by ({match['label']}) ({selector})"


def dashboard_expressions(path: Path) -> list[Expression]:
    """Every panel target of one dashboard, and its query variables as PromQL."""
    board = load_dashboard(path)
    found: list[Expression] = []
    for panel in iter_panels(board["panels"]):
        for target in panel.get("targets", []):
            found.append(Expression(f"{path.name}: panel {panel['title']!r} target {target['refId']}",
                                    target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            found.append(Expression(f"{path.name}: variable ${variable['name']}", variable_query_as_promql(query)))
    return found


def load_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_expressions() -> list[Expression]:
    """Every rule's expression, and the series each recording rule writes."""
    found: list[Expression] = []
    for rule in load_rules():
        name = rule.get("record") or rule["alert"]
        found.append(Expression(f"rules.yml: {name}", rule["expr"]))
        if "record" in rule:
            found.append(Expression(f"rules.yml: series written by {name}", rule["record"]))
    return found


def all_expressions() -> list[Expression]:
    found = [expr for path in dashboard_files() for expr in dashboard_expressions(path)]
    return found + rule_expressions()


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables (``$service``, ``${service}``, ``$__rate_interval``) by concrete values."""

    def one(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in values:
            raise KeyError(f"no test value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(one, expr)


# -- metric names in PromQL, without a PromQL parser --------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan", "Inf", "NaN"}
_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"([^"]*)"')


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: bare selectors, and ``{__name__="..."}`` matchers."""
    names = {value for op, value in _NAME_MATCHER.findall(expr) if op == "="}
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    for ident, call in _IDENT.findall(text):
        if call or ident in _KEYWORDS:
            continue
        names.add(ident)
    return names


def name_patterns(expr: str) -> set[str]:
    """The regular expressions of ``{__name__=~"..."}`` matchers."""
    return {value for op, value in _NAME_MATCHER.findall(expr) if op == "=~"}


# -- the metric tables of the contract ----------------------------------------------------------------------

_METRIC_ROW = re.compile(r"^\|\s*`((?:registry|resilient_client)_\w+)`\s*\|\s*(counter|gauge|histogram)\s*\|",
                         re.MULTILINE)


def metric_table(markdown: str) -> dict[str, str]:
    """``{name: type}`` from the metric tables of a Markdown page."""
    return dict(_METRIC_ROW.findall(markdown))


def repo_metric_table() -> dict[str, str]:
    """The metric tables kept in the repository (README and docs/): the source of truth in a fresh clone."""
    table: dict[str, str] = {}
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        table.update(metric_table(page.read_text()))
    return table


def exposed_names(table: dict[str, str]) -> set[str]:
    """The series names Prometheus stores for each metric (a histogram's ``_bucket``, ``_sum``, ``_count``)."""
    names: set[str] = set()
    for name, kind in table.items():
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
        else:
            names.add(name)
    return names


@cache
def code_metrics() -> dict[str, str]:
    """``{name: type}`` of every metric family the registry and the client export, read from the code's own
    registries (the registry's with its standard process_* and python_* collectors), each name as users write
    it (a counter with its ``_total``)."""
    registry = CollectorRegistry()
    RegistryMetrics(registry)
    client_metrics(registry)
    return {f"{family.name}_total" if family.type == "counter" else family.name: family.type
            for family in registry.collect()}
