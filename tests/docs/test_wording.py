"""The README and the site state the set-up, and cite nothing outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

SETUP = (
    "pip install -c constraints.txt -e '.[dev]' && registry-server   "
    "# registry on :3011, embedded store without REDIS_URL\n"
    "python3 -m pytest                                              # every test\n"
)

FORBIDDEN = {
    "the contract document": re.compile(r"SPEC\.md|\bSPEC\b"),
    "the design notes": re.compile(r"DESIGN\.md"),
    "the shared folder": re.compile(r"\.\./shared"),
    "an issue number": re.compile(r"\b[Ii]ssues? #?[0-9]"),
    "the development machine": re.compile(r"\b(?:this|the development|the shared) machine\b", re.IGNORECASE),
    "a work session": re.compile(r"\b(?:this|first|second|third|earlier|previous|helper|other sessions') session",
                                 re.IGNORECASE),
    "a date of work": re.compile(r"\b20\d\d-\d\d-\d\d\b(?!T)"),
    "a commit": re.compile(r"\b(?:commit|at|since|before|after)\s+`?[0-9a-f]{7,40}\b"),
}


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(REPO)) for page in PAGES])
def test_no_page_cites_what_is_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    hits = [(what, match.group(0), text.count("\n", 0, match.start()) + 1)
            for what, pattern in FORBIDDEN.items() for match in pattern.finditer(text)]
    assert hits == [], f"{page.relative_to(REPO)}: {hits}"


@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/getting-started.md", "docs/contributing.md"])
def test_the_setup_commands_are_stated(page: str) -> None:
    assert f"```sh\n{SETUP}```" in (REPO / page).read_text(encoding="utf-8")


def test_the_scan_catches_what_it_names() -> None:
    samples = {"the contract document": "see SPEC.md", "an issue number": "issue 6's figures",
               "the development machine": "on this machine", "a work session": "third session",
               "a date of work": "measured 2026-11-28", "a commit": "at 959e181"}
    for what, sample in samples.items():
        assert FORBIDDEN[what].search(sample), what
    assert not FORBIDDEN["a date of work"].search('"registered_at": "2030-01-01T12:00:00.000Z"')
    assert not FORBIDDEN["a work session"].search("kept in the tab's sessionStorage")
