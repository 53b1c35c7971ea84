"""Property-based fuzzing of the Eureka and Consul endpoints with the content types their clients send
(JSON and XML): whatever the body, no 5xx, and every read of every dialect still answers afterwards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore

CLIENT = TestClient(create_app(Settings(instance_ttl_s=30), store=MemoryStore()), raise_server_exceptions=False)
READS = ["/instances", "/services", "/prometheus/targets", "/v1/catalog/services", "/v1/agent/services",
         "/v1/health/service/FUZZ", "/eureka/apps"]
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# Text of every kind: controls, lone surrogates, noncharacters, and the ordinary.
text = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", "FUZZ", "fuzz-1", "10.0.0.1", "fe80::1%x", "a\nb", "\ud800", "\x00", "\uffff", "²", "8080", "-1"])
scalar = text | st.integers(-2, 70_000) | st.booleans() | st.none() | st.floats(allow_nan=True)
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                     max_leaves=8)


def _eureka_instance() -> st.SearchStrategy[dict[str, Any]]:
    port = st.fixed_dictionaries({"$": scalar, "@enabled": st.sampled_from(["true", "false", "x"])}) | scalar
    return st.fixed_dictionaries({}, optional={
        "instanceId": text, "hostName": text, "ipAddr": text, "app": st.sampled_from(["FUZZ", "OTHER"]) | text,
        "port": port, "securePort": port, "status": st.sampled_from(["UP", "DOWN", "OUT_OF_SERVICE"]) | text,
        "healthCheckUrl": text, "metadata": st.dictionaries(text, text, max_size=4) | value})


def _consul_service() -> st.SearchStrategy[dict[str, Any]]:
    check = st.fixed_dictionaries({}, optional={"TTL": text | st.sampled_from(["10s", "1m"]), "Status": text,
                                                "CheckID": text, "HTTP": text})
    return st.fixed_dictionaries({}, optional={
        "Name": st.sampled_from(["FUZZ"]) | text, "ID": text, "Port": scalar, "Address": text,
        "Meta": st.dictionaries(text, text, max_size=4) | value, "Check": check | value,
        "Checks": st.lists(check, max_size=2) | value})


def _xml(tag: str, content: Any) -> str:
    if isinstance(content, dict):
        attrs = "".join(f" {k[1:]}={quoteattr(str(v))}" for k, v in content.items()
                        if k.startswith("@") and k[1:].isidentifier())
        inner = "".join(escape(str(v)) if k == "$" else _xml(k, v) for k, v in content.items()
                        if not k.startswith("@") and (k == "$" or k.isidentifier()))
        return f"<{tag}{attrs}>{inner}</{tag}>"
    return f"<{tag}>{escape(str(content))}</{tag}>"


def _reads_still_answer() -> None:
    for path in READS:
        answer = CLIENT.get(path, headers={"Accept": "application/json"})
        assert answer.status_code == 200, (path, answer.text[:300])
    xml = CLIENT.get("/eureka/apps", headers={"Accept": "application/xml"})
    ET.fromstring(xml.content)


@FUZZ
@given(instance=_eureka_instance(), wrapped=st.booleans(), as_xml=st.booleans())
def test_eureka_registrations_never_answer_5xx_nor_break_a_read(instance: dict[str, Any], wrapped: bool,
                                                                 as_xml: bool) -> None:
    if as_xml:
        body = _xml("instance", instance).encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/xml"}
    else:
        body = json.dumps({"instance": instance} if wrapped else instance).encode()
        headers = {"Content-Type": "application/json"}
    answer = CLIENT.post("/eureka/apps/FUZZ", content=body, headers=headers)
    assert answer.status_code < 500, answer.text[:300]
    _reads_still_answer()


@FUZZ
@given(service=_consul_service(), as_xml=st.booleans())
def test_consul_registrations_never_answer_5xx_nor_break_a_read(service: dict[str, Any], as_xml: bool) -> None:
    if as_xml:  # Consul speaks JSON only: XML must be refused, never parsed into something
        answer = CLIENT.put("/v1/agent/service/register", content=_xml("service", service).encode(
            "utf-8", "surrogatepass"), headers={"Content-Type": "application/xml"})
        assert 400 <= answer.status_code < 500, answer.text[:300]
    else:
        answer = CLIENT.put("/v1/agent/service/register", content=json.dumps(service).encode(),
                            headers={"Content-Type": "application/json"})
        assert answer.status_code < 500, answer.text[:300]
    _reads_still_answer()


@FUZZ
@given(path=st.sampled_from(["/v1/agent/check/pass/", "/v1/agent/check/update/", "/eureka/apps/FUZZ/",
                             "/v1/agent/service/deregister/"]), target=text, query=text,
       body=value)
def test_renewals_and_queries_never_answer_5xx(path: str, target: str, query: str, body: Any) -> None:
    raw_query = query.encode("utf-8", "surrogatepass")  # any bytes a client can put in a query
    answer = CLIENT.put(path + quote(target.encode("utf-8", "surrogatepass"), safe=""),
                        params={"value": raw_query, "note": raw_query, "index": raw_query},
                        content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, answer.text[:300]
    for read in ("/v1/health/service/FUZZ", "/v1/catalog/service/FUZZ", "/services/FUZZ"):
        assert CLIENT.get(read, params={"index": raw_query, "wait": "1ms"}).status_code < 500
