"""Tiny runs of the registry benchmarks, so they cannot rot (their figures are not checked here: they
are measured by hand, as ratios within one run, and published in docs/benchmarks.md). Each runs at the
smallest size that still goes through every part of its benchmark: short phases, few instances, one round.

Each starts its own redis-server and registry processes on 127.0.0.1 and stops them by process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _run(*args: str, timeout: float, tools: tuple[str, ...] = ("redis-server", "wrk", "hey")) -> str:
    for tool in tools:
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"CI is set and {tool} is not installed")
            pytest.skip(f"{tool} is not installed")
    done = _bench(list(args), timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _bench(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <args>``; past ``timeout`` (or the test's own), kill it with every process it started
    (the benchmarks start theirs in sessions of their own, which outlive a kill of the benchmark's group)."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # this timeout, or pytest-timeout's failure raised while waiting
        for pid in [*_descendants(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_bench_registry_prints_every_load_against_its_ping_and_the_fixed_rate_latencies() -> None:
    out = _run("benchmarks.bench_registry", "--seconds", "1", "--rounds", "1", "--instances", "20",
               "--latency-seconds", "1", timeout=120)
    for line in ("ping GET", "ping PUT", "heartbeat+body", "discovery", "CPU ratio", "fixed rate"):
        assert line in out, out
    heartbeat = next(row for row in out.splitlines() if row.startswith("heartbeat+body") and "ping PUT" in row)
    columns = heartbeat.split()  # name, baseline (two words), req/s, ratio, min, max, p50, p99, non-2xx, ...
    assert float(columns[3]) > 0, "heartbeats were answered"
    assert columns[9] == "0", "and none was refused"


def test_bench_scale_prints_scale_memory_and_mass_expiry() -> None:
    out = _run("benchmarks.bench_scale", "--seconds", "1", "--window", "1", "--repeats", "1", "--cycles", "1",
               "--small", "50", "--large", "200", "--sample", "50", "--expiring", "100", timeout=240)
    for word in ("per instance", "swept and counted", "p99"):
        assert word in out, out


def test_bench_watch_prints_the_change_latency_and_the_watchers_cost() -> None:
    out = _run("benchmarks.bench_watch", "--rounds", "5", "--watchers", "20", "--seconds", "1",
               timeout=180)
    assert "p99" in out and "ratio" in out, out


def test_bench_instructions_counts_each_heartbeat_load_against_its_ping() -> None:
    # No warm-up and a handful of requests: every load is still sent, counted and compared with its ping.
    out = _run("benchmarks.bench_instructions", "--requests", "4", "--concurrency", "2", "--warmup", "0", timeout=300,
               tools=("redis-server", "hey", "valgrind", "callgrind_control"))
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("ping", "heartbeat"))
            and "instructions per request" not in line}
    assert set(rows) == {"ping", "heartbeat", "heartbeat+body"}, out
    heartbeat = rows["heartbeat+body"]  # name, baseline (two words), instructions per request, ratio
    assert int(heartbeat[3].replace(",", "")) > 0 and 0 < float(heartbeat[4]) < 2, out


def test_bench_health_prints_detection_cost_and_two_replicas() -> None:
    out = _run("benchmarks.bench_health", "--interval", "0.5", "--timeout", "0.5", "--failures", "1",
               "--instances", "10", "--seconds", "1", "--rate", "50", "--rounds", "1", timeout=180,
               tools=("redis-server", "hey"))
    assert "detection:" in out and "heartbeat with 10 checked:" in out and "two replicas:" in out, out


def test_bench_overload_prints_both_capacities_and_every_figure_of_each_ratio() -> None:
    # Exit 1 only says a target was missed, which a tiny run on a busy machine may: figures are not checked.
    done = _bench(["benchmarks.bench_overload", "--ratios", "0.5", "--duration", "1.5", "--capacity-duration", "0.5",
                   "--open-step", "0.2", "--ttl", "2", "--no-pin", "--json"], timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    *capacities, summary = done.stdout.strip().splitlines()[-5:]
    assert [line.split(":")[0] for line in capacities] == ["capacity", "open-loop capacity"] * 2, capacities
    figures = json.loads(summary)
    assert figures["ratio"] == 0.5 and figures["sent"] > 0
    assert {"useful_per_s", "shed_503", "paced_200", "registry_counted", "false_expiries", "probe_p99_ms", "recovery_s",
            "death_detected_after_lease_s", "generator_late_s", "warm_up_s", "up_one_interval_after",
            "registry_cores", "registry_cpu_us_per_answer", "capacity_after_per_s", "lost",
            "not_200_after"} <= figures.keys()
    assert len(figures["lost"]) == min(5, figures["false_expiries"]), "each live instance lost, with its answers"
    assert len(figures["open_capacity_per_s"]) == 2 and all(c > 0 for c in figures["open_capacity_per_s"]), figures
    assert figures["useful_share_of_open_capacity"] > 0, figures


def test_bench_retention_prints_the_idle_cost_while_retained_and_once_dropped() -> None:
    out = _run("benchmarks.bench_retention", "--names", "5", "--retention", "6", "--window", "0.5", timeout=180,
               tools=("redis-server", "redis-cli"))
    rows = [row for row in out.splitlines() if row.startswith("| 5 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["retained", "just dropped", "markers expired"], out
