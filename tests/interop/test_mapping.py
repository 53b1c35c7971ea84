"""The pure mapping code: our instances to Prometheus targets, Eureka JSON/XML and Consul JSON, and back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_server.interop import consul, eureka
from registry_server.interop.eureka_xml import XmlInputError, from_xml, to_xml
from registry_server.interop.labels import metadata_labels, sanitize_label_name
from registry_server.interop.negotiation import wants_json
from registry_server.interop.prometheus_sd import targets
from registry_server.model import Instance, InstanceStatus

LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def make(id_: str = "user-1", name: str = "User", status: InstanceStatus = InstanceStatus.UP, scheme: str = "http",
         metadata: dict[str, str] | None = None, version: str = "1.0.0", host: str = "10.0.0.5") -> Instance:
    return Instance(id=id_, name=name, host=host, port=4001, scheme=scheme, health_endpoint="/health",
                    version=version, description="", status=status, metadata=metadata or {},
                    registered_at_ms=1_000, last_heartbeat_ms=2_000, expires_at_ms=92_000)


# ----------------------------------------------------------------------------- labels


@given(st.text(min_size=0, max_size=40))
def test_any_metadata_key_sanitises_to_a_valid_label_name(key: str) -> None:
    assert LABEL.match(sanitize_label_name(key))


def test_invalid_characters_become_underscores_and_a_leading_digit_gets_one() -> None:
    assert sanitize_label_name("prometheus.io/port") == "prometheus_io_port"
    assert sanitize_label_name("1zone") == "_1zone"


def test_colliding_metadata_keys_keep_the_first_in_sorted_order() -> None:
    assert metadata_labels("m_", {"a.b": "dot", "a-b": "dash"}) == {"m_a_b": "dash"}


# ---------------------------------------------------------------------------- prometheus


def test_prometheus_targets_list_only_up_instances_with_meta_labels() -> None:
    groups = targets([make(metadata={"zone": "eu-1", "team.name": "core"}),
                      make(id_="user-2", status=InstanceStatus.DOWN)])
    assert groups == [{"targets": ["10.0.0.5:4001"], "labels": {
        "__scheme__": "http", "__meta_registry_service": "User", "__meta_registry_instance_id": "user-1",
        "__meta_registry_version": "1.0.0", "__meta_registry_status": "UP", "__meta_registry_scheme": "http",
        "__meta_registry_health_url": "http://10.0.0.5:4001/health",
        "__meta_registry_metadata_team_name": "core", "__meta_registry_metadata_zone": "eu-1"}}]


def test_prometheus_target_of_an_ipv6_host_is_bracketed() -> None:
    assert targets([make(host="::1")])[0]["targets"] == ["[::1]:4001"]


# ------------------------------------------------------------------------------- eureka


def test_eureka_view_upper_cases_the_app_and_carries_version_in_metadata() -> None:
    view = eureka.instance_to_eureka(make(metadata={"zone": "eu-1"}), ttl_s=90)
    assert view["app"] == "USER" and view["vipAddress"] == "User"
    assert view["port"] == {"$": 4001, "@enabled": "true"}
    assert view["securePort"]["@enabled"] == "false"
    assert view["metadata"] == {"zone": "eu-1", "version": "1.0.0"}
    assert view["healthCheckUrl"] == "http://10.0.0.5:4001/health"
    assert view["leaseInfo"]["durationInSecs"] == 90


def test_eureka_view_of_an_https_instance_enables_the_secure_port_only() -> None:
    view = eureka.instance_to_eureka(make(scheme="https"), ttl_s=90)
    assert view["port"]["@enabled"] == "false"
    assert view["securePort"] == {"$": 4001, "@enabled": "true"}


@pytest.mark.parametrize(("ours", "theirs"), [(InstanceStatus.UP, "UP"), (InstanceStatus.DOWN, "DOWN"),
                                              (InstanceStatus.STARTING, "STARTING"), (InstanceStatus.STOPPING, "DOWN")])
def test_our_statuses_map_to_eureka_statuses(ours: InstanceStatus, theirs: str) -> None:
    assert eureka.status_to_eureka(ours) == theirs


@pytest.mark.parametrize(("theirs", "ours"), [
    ("UP", InstanceStatus.UP), ("down", InstanceStatus.DOWN), ("STARTING", InstanceStatus.STARTING),
    ("OUT_OF_SERVICE", InstanceStatus.DOWN), ("UNKNOWN", InstanceStatus.DOWN)])
def test_eureka_statuses_map_to_ours(theirs: str, ours: InstanceStatus) -> None:
    assert eureka.status_from_eureka(theirs) is ours


def test_an_unknown_eureka_status_is_an_input_error() -> None:
    with pytest.raises(eureka.EurekaInputError):
        eureka.status_from_eureka("SLEEPY")


def test_apps_hashcode_counts_statuses_in_sorted_order() -> None:
    assert eureka.apps_hashcode(["UP", "DOWN", "UP"]) == "DOWN_1_UP_2_"
    assert eureka.apps_hashcode([]) == ""


def test_applications_group_by_upper_cased_name_and_hash_the_whole_registry() -> None:
    doc = eureka.applications([make(), make(id_="u-2", name="USER"), make(id_="a-1", name="Auth")], 90, 7)
    apps = doc["applications"]
    assert [a["name"] for a in apps["application"]] == ["AUTH", "USER"]
    assert len(apps["application"][1]["instance"]) == 2
    assert apps["apps__hashcode"] == "UP_3_" and apps["versions__delta"] == "7"


def test_registration_joins_the_existing_service_case_insensitively() -> None:
    assert eureka.resolve_service_name("USER", ["Auth", "User"]) == "User"
    assert eureka.resolve_service_name("User", ["USER", "User"]) == "User"
    assert eureka.resolve_service_name("ORDERS", ["User"]) == "ORDERS"


BODY = {"instance": {"instanceId": "10.0.0.7:orders:9090", "hostName": "orders.local", "app": "ORDERS",
                     "ipAddr": "10.0.0.7", "status": "STARTING", "port": {"$": 9090, "@enabled": "true"},
                     "securePort": {"$": 443, "@enabled": "false"},
                     "healthCheckUrl": "http://orders.local:9090/actuator/health",
                     "metadata": {"@class": "java.util.Collections$EmptyMap", "version": "2.1", "zone": "b"},
                     "dataCenterInfo": {"@class": eureka.DATA_CENTER_CLASS, "name": "MyOwn"}}}


def test_a_eureka_json_registration_maps_to_our_registration() -> None:
    parsed = eureka.parse_instance(BODY, "orders")
    reg = parsed.registration("ORDERS", "hash")
    assert (reg.id, reg.name, reg.host, reg.port, reg.scheme) == ("10.0.0.7:orders:9090", "ORDERS", "orders.local",
                                                                  9090, "http")
    assert reg.status is InstanceStatus.STARTING and reg.version == "2.1"
    assert reg.health_endpoint == "/actuator/health"
    assert reg.metadata == {"version": "2.1", "zone": "b"}


def test_a_eureka_xml_registration_maps_like_its_json() -> None:
    xml = to_xml(BODY)
    assert eureka.parse_instance(from_xml(xml), "ORDERS") == eureka.parse_instance(BODY, "ORDERS")


def test_eureka_xml_renders_attributes_text_and_repeated_elements() -> None:
    xml = to_xml({"application": {"name": "USER", "instance": [{"port": {"$": 1, "@enabled": "true"}},
                                                                {"port": {"$": 2, "@enabled": "false"}}]}})
    assert b'<application><name>USER</name><instance><port enabled="true">1</port></instance>' in xml
    assert b'<instance><port enabled="false">2</port></instance></application>' in xml


def test_metadata_keys_that_are_not_xml_names_are_left_out_of_xml() -> None:
    assert b"bad key" not in to_xml({"instance": {"metadata": {"bad key": "x", "ok": "y"}}})


@pytest.mark.parametrize("raw", [b"<instance>", b"not xml",
                                 b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'])
def test_malformed_xml_or_a_dtd_is_refused(raw: bytes) -> None:
    with pytest.raises(XmlInputError):
        from_xml(raw)


@pytest.mark.parametrize(("change", "message"), [
    ({"app": "OTHER"}, "Mismatched appName"),
    ({"instanceId": "bad/id"}, "instanceId"),
    ({"hostName": "", "ipAddr": "not a host"}, "hostName or ipAddr"),
    ({"port": {"$": 0, "@enabled": "true"}, "securePort": {"$": 443, "@enabled": "false"}}, "no enabled port"),
    ({"port": {"$": "x"}}, "port must be"),
    ({"status": "SLEEPY"}, "unknown status"),
    ({"metadata": ["x"]}, "metadata"),
])
def test_invalid_eureka_registrations_are_input_errors(change: dict[str, object], message: str) -> None:
    body = {"instance": {**BODY["instance"], **change}}
    with pytest.raises(eureka.EurekaInputError, match=message):
        eureka.parse_instance(body, "ORDERS")


@pytest.mark.parametrize(("accept", "json_wanted"), [(None, False), ("*/*", False), ("application/xml", False),
                                                     ("application/json", True),
                                                     ("application/json, application/xml", True),
                                                     ("application/xml, application/json", False)])
def test_eureka_answers_xml_unless_json_is_preferred(accept: str | None, json_wanted: bool) -> None:
    assert wants_json(accept) is json_wanted


# ------------------------------------------------------------------------------- consul


@pytest.mark.parametrize(("ours", "check"), [(InstanceStatus.UP, "passing"), (InstanceStatus.STARTING, "warning"),
                                             (InstanceStatus.DOWN, "critical"), (InstanceStatus.STOPPING, "critical")])
def test_our_statuses_map_to_consul_check_statuses(ours: InstanceStatus, check: str) -> None:
    assert consul.check_status(ours) == check


@pytest.mark.parametrize("status", [InstanceStatus.UP, InstanceStatus.STARTING, InstanceStatus.DOWN])
def test_consul_check_statuses_map_back_to_the_same_status(status: InstanceStatus) -> None:
    assert consul.status_from_check(consul.check_status(status)) is status


def test_a_consul_health_entry_carries_node_service_and_check() -> None:
    entry = consul.health_entry(make(status=InstanceStatus.DOWN, metadata={"zone": "a"}), index=5)
    assert entry["Service"] == {**entry["Service"], "ID": "user-1", "Service": "User", "Address": "10.0.0.5",
                                "Port": 4001, "Meta": {"zone": "a", "version": "1.0.0"}}
    assert entry["Node"]["Address"] == "10.0.0.5"
    assert entry["Checks"][0]["CheckID"] == "service:user-1"
    assert entry["Checks"][0]["Status"] == "critical"


def test_a_consul_catalog_entry_names_the_service_address_and_port() -> None:
    entry = consul.catalog_entry(make(), index=3)
    assert (entry["ServiceID"], entry["ServiceName"], entry["ServiceAddress"], entry["ServicePort"]) == (
        "user-1", "User", "10.0.0.5", 4001)


def test_a_service_index_is_never_zero_and_the_catalog_index_moves_with_any_revision() -> None:
    assert consul.service_index(0) == 1
    before = consul.catalog_index({"A": 1, "B": 4})
    assert consul.catalog_index({"B": 4, "A": 1}) == before
    assert consul.catalog_index({"A": 2, "B": 4}) != before
    assert consul.catalog_index({"A": 1}) != before


@pytest.mark.parametrize(("raw", "seconds"), [(None, 300.0), ("10s", 10.0), ("120000ms", 120.0), ("5m", 300.0),
                                              ("1h", 300.0), ("7", 7.0)])
def test_consul_wait_durations_parse_and_are_capped(raw: str | None, seconds: float) -> None:
    assert consul.parse_wait(raw) == seconds


@pytest.mark.parametrize("raw", ["soon", "-1s", "10x"])
def test_a_bad_consul_wait_is_an_input_error(raw: str) -> None:
    with pytest.raises(consul.ConsulInputError):
        consul.parse_wait(raw)


def test_a_consul_registration_with_a_ttl_check_starts_critical() -> None:
    parsed = consul.parse_registration({"ID": "pay-1", "Name": "Pay", "Port": 5000, "Address": "10.0.0.9",
                                        "Meta": {"version": "3"}, "Check": {"TTL": "10s"}})
    assert (parsed.id, parsed.name, parsed.host, parsed.port, parsed.status) == ("pay-1", "Pay", "10.0.0.9", 5000,
                                                                                InstanceStatus.DOWN)
    assert parsed.registration("10.0.0.9", "h").version == "3"


def test_a_consul_registration_without_checks_is_passing_and_its_id_defaults_to_the_name() -> None:
    parsed = consul.parse_registration({"name": "Pay", "port": 5000})
    assert (parsed.id, parsed.status, parsed.host) == ("Pay", InstanceStatus.UP, None)


def test_a_ttl_check_may_start_passing() -> None:
    parsed = consul.parse_registration({"Name": "Pay", "Port": 1, "Checks": [{"TTL": "5s", "Status": "passing"}]})
    assert parsed.status is InstanceStatus.UP


@pytest.mark.parametrize(("body", "message"), [
    ([], "JSON object"),
    ({"Port": 1}, "service name"),
    ({"Name": "Pay", "Port": 0}, "Port"),
    ({"Name": "Pay", "Port": True}, "Port"),
    ({"Name": "Pay", "Port": 1, "Check": {"TCP": "x:1", "Interval": "10s"}}, "only TTL and HTTP checks"),
    ({"Name": "Pay", "Port": 1, "Check": {"HTTP": "http://x/health", "Interval": "10s"}}, "service's own port"),
    ({"Name": "Pay", "Port": 1, "Check": {"HTTP": "ftp://x:1/health"}}, "http:// or https://"),
    ({"Name": "Pay", "Port": 1, "Check": {"HTTP": "http://x:1/health", "Interval": "soon"}}, "Invalid duration"),
    ({"Name": "Pay", "Port": 1, "Check": {"TTL": "10s", "CheckID": "mine"}}, "check ids"),
    ({"Name": "Pay", "Port": 1, "Meta": {"a": 1}}, "Meta"),
    ({"Name": "Pay", "Port": 1, "Address": "bad host!"}, "Address"),
])
def test_invalid_consul_registrations_are_input_errors(body: object, message: str) -> None:
    with pytest.raises(consul.ConsulInputError, match=message):
        consul.parse_registration(body)


def test_check_ids_name_their_instance() -> None:
    assert consul.instance_of_check(consul.check_id("pay-1")) == "pay-1"
    assert consul.instance_of_check("pay-1") == "pay-1"
