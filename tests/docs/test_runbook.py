"""The operations page has a runbook entry for each alert rule, and none for an alert that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "dashboards" / "prometheus" / "rules.yml"
PAGE = REPO / "docs" / "operations.md"


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def runbook_entries() -> dict[str, str]:
    runbook = PAGE.read_text(encoding="utf-8").split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\w+)\n", runbook, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_alert_has_a_runbook_entry_and_every_entry_an_alert() -> None:
    assert set(runbook_entries()) == alert_names()


def test_every_entry_says_what_it_means_what_to_check_and_what_to_do() -> None:
    for name, entry in runbook_entries().items():
        for part in ("**What it means.**", "**What to check.**", "**What to do.**"):
            assert part in entry, f"{name}: no {part}"
