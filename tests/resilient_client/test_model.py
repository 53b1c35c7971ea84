from datetime import UTC, datetime

import pytest

from resilient_client import ServiceInstance, Status

SPEC_EXAMPLE = {"id": "Auth-5f0c9e2a41d84b6e", "name": "Auth", "host": "10.0.0.5", "port": 3001,
                "scheme": "http", "url": "http://10.0.0.5:3001", "health_endpoint": "/health",
                "health_url": "http://10.0.0.5:3001/health", "version": "1.0.0",
                "description": "Authentication service", "status": "UP", "metadata": {"zone": "eu-1"},
                "registered_at": "2026-11-27T12:00:00.000Z", "last_heartbeat": "2026-11-27T12:00:30.000Z",
                "expires_at": "2026-11-27T12:02:00.000Z", "lease_token": "ignored"}


def test_an_instance_parses_every_spec_field_and_its_timestamps() -> None:
    inst = ServiceInstance.from_json(SPEC_EXAMPLE)
    assert inst.status is Status.UP
    assert inst.metadata["zone"] == "eu-1"
    assert inst.registered_at == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert inst.expires_at is not None and inst.expires_at.tzinfo is not None
    assert (inst.address, inst.base_url, inst.health_url) == (
        "10.0.0.5:3001", "http://10.0.0.5:3001", "http://10.0.0.5:3001/health")


def test_an_instance_is_frozen_and_hashable() -> None:
    inst = ServiceInstance.from_json(SPEC_EXAMPLE)
    with pytest.raises(AttributeError):
        inst.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        inst.metadata["zone"] = "x"  # type: ignore[index]
    assert len({inst, ServiceInstance.from_json(SPEC_EXAMPLE)}) == 1


def test_a_missing_url_is_built_from_scheme_host_and_port() -> None:
    inst = ServiceInstance.from_json({"id": "a", "name": "A", "host": "h", "port": 1})
    assert inst.base_url == "http://h:1"
