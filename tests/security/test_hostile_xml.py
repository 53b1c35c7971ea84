"""Hostile XML against a real registry process: a DTD in any encoding and deep nesting are refused with a
400 on the Eureka and Consul endpoints, never parsed into an instance and never a 500."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.processes import RegistryProcess, running_registry

pytestmark = pytest.mark.integration

ENTITY_DOC = ('<?xml version="1.0" encoding="UTF-16"?>'
              '<!DOCTYPE instance [<!ENTITY h "evil.example">]>'
              '<instance><instanceId>x-1</instanceId><hostName>&h;</hostName><app>XML</app>'
              '<port enabled="true">9090</port><status>UP</status></instance>')
DEEP_DOC = b"<instance>" + b"<a>" * 9000 + b"</a>" * 9000 + b"</instance>"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    with running_registry(tmp_path_factory.mktemp("xml"), redis_url=None, ttl=30) as proc:
        yield proc


def _send(registry: RegistryProcess, method: str, path: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(registry.url + path, data=body, method=method,
                                 headers={"Content-Type": "application/xml"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-16-be"])
def test_a_dtd_is_refused_whatever_the_encoding(registry: RegistryProcess, encoding: str) -> None:
    body = ENTITY_DOC.replace("UTF-16", encoding.upper()).encode(encoding)
    status, text = _send(registry, "POST", "/eureka/apps/XML", body)
    assert status == 400, text  # refused for its DTD, or for an encoding that expat does not take
    assert _send(registry, "GET", "/instances/x-1", b"")[0] == 404


@pytest.mark.parametrize(("method", "path"), [("POST", "/eureka/apps/XML"),
                                              ("POST", "/eureka/v2/apps/XML"),
                                              ("PUT", "/v1/agent/service/register")])
def test_deeply_nested_xml_is_a_400_not_a_500(registry: RegistryProcess, method: str, path: str) -> None:
    status, text = _send(registry, method, path, DEEP_DOC)
    assert status == 400, text
