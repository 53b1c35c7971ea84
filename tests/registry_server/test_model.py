"""Pure parts: timestamps, lease rules, URLs, the public API."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

import registry_server
from registry_server.model import Instance, InstanceStatus, base_url, format_timestamp


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert format_timestamp(1_795_000_000_007) == "2026-11-18T11:06:40.007Z"


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_timestamps_round_trip_to_the_millisecond(ms: int) -> None:
    text = format_timestamp(ms)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert round(parsed.timestamp() * 1000) == ms


def make(expires_at_ms: int) -> Instance:
    return Instance(id="a", name="A", host="h", port=1, scheme="http", health_endpoint="/health", version="",
                    description="", status=InstanceStatus.UP, metadata={}, registered_at_ms=0, last_heartbeat_ms=0,
                    expires_at_ms=expires_at_ms)


@given(st.integers(min_value=0, max_value=10**13), st.integers(min_value=-10**6, max_value=10**6))
def test_a_lease_is_live_strictly_before_its_expiry(expiry: int, offset: int) -> None:
    assert make(expiry).is_live(expiry + offset) == (offset < 0)


def test_urls_bracket_ipv6_literals() -> None:
    assert base_url("http", "10.0.0.5", 3001) == "http://10.0.0.5:3001"
    assert base_url("https", "fe80::1", 443) == "https://[fe80::1]:443"
    assert make(1).to_json()["health_url"] == "http://h:1/health"


def test_the_public_api_is_explicit_and_sorted() -> None:
    names = registry_server.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(registry_server, name), name
