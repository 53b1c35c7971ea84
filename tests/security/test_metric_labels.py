"""Finding: metric labels copied from requests grew ``/metrics`` without bound. Made-up methods count as
``other``, unknown paths as one ``unmatched`` route, and neither needs a token."""

from __future__ import annotations

import pytest

from tests.support.processes import RegistryProcess
from tests.support.raw_http import send

pytestmark = pytest.mark.integration


def _metrics(registry: RegistryProcess) -> str:
    answer = send(registry.url, "GET", "/metrics")
    assert answer.status == 200
    return answer.text


def test_made_up_methods_and_paths_do_not_grow_the_metrics(registry: RegistryProcess) -> None:
    send(registry.url, "GET", "/services")  # every standard series this test touches exists before
    send(registry.url, "BREW", "/nowhere")
    _metrics(registry)  # the scrape's own series
    before = len(_metrics(registry))
    for n in range(50):
        method = f"M{n:03d}" + "X" * 200
        answer = send(registry.url, method, f"/made-up/path/{n}?q={n}")
        assert 400 <= answer.status < 500
    text = _metrics(registry)
    assert "M000X" not in text and "/made-up" not in text
    assert 'registry_http_requests_total{method="other",route="unmatched",status="404"}' in text
    assert len(text) - before < 1024, f"/metrics grew by {len(text) - before} bytes"
