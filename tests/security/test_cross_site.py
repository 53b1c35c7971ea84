"""Finding: with auth unset (the default) a page on another origin registered instances, because a body
without a content type was taken as JSON and the Eureka dialect sniffed XML. No request a browser can
send cross-origin without a preflight changes state, and no write from an unlisted origin is accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import RegistryProcess, running_registry
from tests.support.raw_http import send

pytestmark = pytest.mark.integration

CONSOLE = "https://console.example.com"
NATIVE = json.dumps({"name": "Payments", "port": 8080, "host": "10.6.6.6", "id": "xsite-1"}).encode()
EUREKA_XML = (b"<instance><instanceId>xsite-1</instanceId><hostName>10.6.6.6</hostName><app>PAYMENTS</app>"
              b'<port enabled="true">8080</port><status>UP</status></instance>')
EUREKA_JSON = json.dumps({"instance": {"instanceId": "xsite-1", "hostName": "10.6.6.6", "app": "PAYMENTS",
                                       "port": {"$": 8080, "@enabled": "true"}}}).encode()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """One registry on the memory store: the rule sits in front of every store."""
    with running_registry(tmp_path_factory.mktemp("xsite"), redis_url=None) as proc:
        yield proc


@pytest.fixture
def console_registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    origins = {"REGISTRY_ALLOWED_ORIGINS": CONSOLE + ",http://b.test:8"}
    with running_registry(tmp_path, redis_url=None, extra_env=origins) as proc:
        yield proc


def _not_registered(registry: RegistryProcess) -> None:
    assert send(registry.url, "GET", "/instances/xsite-1").status == 404


# The bodies a no-cors fetch can carry: no content type (a Blob) or a CORS-safelisted one.
SIMPLE_TYPES = [{}, {"Content-Type": "text/plain"}, {"Content-Type": "text/plain;charset=UTF-8"},
                {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "multipart/form-data"}]


@pytest.mark.parametrize("headers", SIMPLE_TYPES, ids=["none", "text", "text-charset", "form", "multipart"])
@pytest.mark.parametrize(("path", "body"), [("/instances", NATIVE), ("/eureka/apps/PAYMENTS", EUREKA_XML),
                                            ("/eureka/v2/apps/PAYMENTS", EUREKA_JSON)], ids=["native", "xml", "json"])
def test_a_body_a_page_can_send_without_preflight_changes_nothing(registry: RegistryProcess, path: str,
                                                                 body: bytes, headers: dict[str, str]) -> None:
    answer = send(registry.url, "POST", path, body, headers)
    assert answer.status == 400, answer.text
    _not_registered(registry)


@pytest.mark.parametrize(("path", "body", "media"), [("/instances", NATIVE, "application/json"),
                                                     ("/eureka/apps/PAYMENTS", EUREKA_XML, "application/xml")])
def test_a_write_from_another_origin_is_refused(registry: RegistryProcess, path: str, body: bytes,
                                               media: str) -> None:
    answer = send(registry.url, "POST", path, body, {"Content-Type": media, "Origin": "http://evil.example"})
    assert answer.status == 403, answer.text
    assert json.loads(answer.body)["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in answer.headers
    _not_registered(registry)
    preflight = send(registry.url, "OPTIONS", "/instances/any", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "DELETE"})
    assert preflight.status == 403 and "access-control-allow-origin" not in preflight.headers


def test_the_registrys_own_console_and_plain_clients_may_write(registry: RegistryProcess) -> None:
    mine = NATIVE.replace(b"xsite-1", b"xsite-own")
    answer = send(registry.url, "POST", "/instances", mine,
                  {"Content-Type": "application/json", "Origin": registry.url})
    assert answer.status == 201, answer.text
    orders = EUREKA_XML.replace(b"PAYMENTS", b"ORDERS").replace(b"xsite-1", b"xsite-eureka")
    eureka = send(registry.url, "POST", "/eureka/apps/ORDERS", orders, {"Content-Type": "application/xml"})
    assert eureka.status == 204, eureka.text


def test_a_listed_origin_gets_preflights_and_readable_answers(console_registry: RegistryProcess) -> None:
    url = console_registry.url
    preflight = send(url, "OPTIONS", "/instances", headers={
        "Origin": CONSOLE, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    assert "POST" in preflight.headers["access-control-allow-methods"]
    answer = send(url, "POST", "/instances", NATIVE.replace(b"xsite-1", b"xsite-console"),
                  {"Content-Type": "application/json", "Origin": CONSOLE})
    assert answer.status == 201, answer.text
    assert answer.headers["access-control-allow-origin"] == CONSOLE
    other = send(url, "OPTIONS", "/instances", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other.headers
    read = send(url, "GET", "/instances", headers={"Origin": "https://evil.example"})
    assert read.status == 200 and "access-control-allow-origin" not in read.headers


@pytest.mark.parametrize("value", ["console.example.com", "https://console.example.com/ui", "ftp://x.test",
                                   "https://x.test:port"])
def test_a_bad_allowed_origin_exits_2_with_one_line(tmp_path: Path, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "registry_server", "--allowed-origins", value],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "REGISTRY_ALLOWED_ORIGINS" in done.stderr
