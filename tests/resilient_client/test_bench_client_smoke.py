"""A tiny run of ``benchmarks/bench_client.py``, so the benchmark cannot rot (its figures are not checked)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_client.py"


def test_the_client_benchmark_runs_end_to_end_and_prints_its_ratios() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--calls", "16", "--concurrency", "2", "--rounds", "2",
                           "--transport", "--burn-us", "5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for line in ("raw aiohttp session.get", "ResilientClient.get", "AiohttpTransport.send", "busy loop",
                 "throughput ratio (client / raw)", "CPU per call", "client code alone"):
        assert line in done.stdout, done.stdout
