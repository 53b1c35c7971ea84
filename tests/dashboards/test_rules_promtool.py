"""promtool, from the OS's prometheus package, accepts the rules and passes their unit tests."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.support.dashboards_exprs import RULES, RULES_TEST, load_rules
from tests.support.dashboards_prometheus import require_binary


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("promtool"), *args], capture_output=True, text=True, timeout=60,
                          check=False, cwd=RULES.parent)


@pytest.mark.integration
def test_promtool_check_rules_accepts_every_rule() -> None:
    done = _promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in done.stdout


@pytest.mark.integration
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = _promtool("test", "rules", RULES_TEST.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_and_recording_rule_has_a_promtool_unit_test() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    alerts_tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    exprs_tested = {case["expr"].strip() for test in tests for case in test.get("promql_expr_test", [])}
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    records = {rule["record"] for rule in load_rules() if "record" in rule}
    assert alerts - alerts_tested == set()
    assert records - exprs_tested == set()
    # and each alert is shown both firing and staying quiet
    for alert in alerts:
        cases = [case for test in tests for case in test.get("alert_rule_test", []) if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in cases), f"{alert} is never shown firing"
        assert any(not case["exp_alerts"] for case in cases), f"{alert} is never shown staying quiet"


@pytest.mark.parametrize("rule", [rule for rule in load_rules() if "alert" in rule], ids=lambda rule: rule["alert"])
def test_every_alert_tells_the_operator_what_happened_and_where_to_look(rule: dict[str, object]) -> None:
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert annotations.get("summary"), "no summary"
    assert len(str(annotations.get("description", ""))) > 120, "the description should say what to look at"
    labels = rule["labels"]
    assert isinstance(labels, dict) and labels.get("severity") in {"warning", "critical"}
