"""Pure output helpers of registryctl: tables, durations, change lines."""

from __future__ import annotations

import registryctl
from registryctl import render

INST = {"id": "a-1", "name": "A", "host": "10.0.0.1", "port": 80, "scheme": "http", "url": "http://10.0.0.1:80",
        "health_url": "http://10.0.0.1:80/health", "version": "1.0", "description": "", "status": "UP",
        "metadata": {"zone": "eu", "a": "b"}, "registered_at": "2026-11-28T12:00:00.000Z",
        "last_heartbeat": "2026-11-28T12:00:30.000Z", "expires_at": "2026-11-28T12:02:00.000Z"}
NOW = render.epoch_ms("2026-11-28T12:00:35.000Z")


def test_the_public_api_is_explicit_and_sorted() -> None:
    assert registryctl.__all__ == sorted(registryctl.__all__)
    assert all(hasattr(registryctl, name) for name in registryctl.__all__)


def test_a_table_pads_columns_to_their_widest_cell_without_trailing_spaces() -> None:
    assert render.table(["A", "BB"], [["long", "x"], ["s", ""]]) == "A     BB\nlong  x\ns"


def test_durations_read_like_a_person_would_write_them() -> None:
    assert [render.duration(ms) for ms in (-5, 850, 12_000, 184_000, 7_500_000, 273_600_000)] == [
        "0ms", "850ms", "12s", "3m04s", "2h05m", "3d04h"]


def test_an_instance_table_shows_heartbeat_age_expiry_and_sorted_metadata() -> None:
    lines = render.instances_table([INST], NOW).splitlines()
    assert lines[0].split() == ["ID", "SERVICE", "ADDRESS", "VERSION", "STATUS", "HEARTBEAT", "EXPIRES", "IN",
                                "METADATA"]
    assert lines[1].split() == ["a-1", "A", "10.0.0.1:80", "1.0", "UP", "5s", "1m25s", "a=b,zone=eu"]


def test_an_ipv6_host_is_bracketed_and_a_past_lease_reads_expired() -> None:
    inst = {**INST, "host": "::1"}
    assert render.address(inst) == "[::1]:80"
    assert render.expiry(inst, render.epoch_ms("2026-11-28T12:03:00.000Z")) == "expired"


def test_changes_list_additions_removals_and_status_moves() -> None:
    before = {"a-1": INST, "a-2": {**INST, "id": "a-2"}}
    after = {"a-1": {**INST, "status": "DOWN"}, "a-3": {**INST, "id": "a-3", "port": 81}}
    assert render.changes(before, after) == ["+ a-3 10.0.0.1:81 UP", "- a-2 10.0.0.1:80",
                                             "~ a-1 status UP -> DOWN"]
