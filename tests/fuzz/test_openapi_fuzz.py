"""Property-based fuzzing of every endpoint from /openapi.json: no 5xx, no answer that breaks the schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore

APP = create_app(Settings(instance_ttl_s=30), store=MemoryStore())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# The change stream never ends: it is fuzzed by its parameters' validation in the hand-written suite.
schema = schema.exclude(path="/events")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_endpoint_answers_5xx_or_breaks_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
