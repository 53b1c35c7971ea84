from __future__ import annotations

import re

import pytest

from registry_server.errors import ConfigError
from registry_server.settings import Settings, load_settings
from registry_server.store.redis_url import RedisMode, parse_redis_url


def test_defaults_follow_the_spec_table() -> None:
    s = load_settings([], {})
    assert (s.host, s.port, s.redis, s.instance_ttl_s, s.sweep_interval_s, s.auth_token, s.log_level) == (
        "0.0.0.0", 3011, None, 90.0, 1.0, None, "info")


def test_environment_is_read_from_the_mapping_given() -> None:
    s = load_settings([], {"REGISTRY_HOST": "127.0.0.1", "REGISTRY_PORT": "4000", "REDIS_URL": "redis://r:6380/2",
                           "REGISTRY_INSTANCE_TTL": "1.5", "REGISTRY_SWEEP_INTERVAL": "0.1",
                           "REGISTRY_AUTH_TOKEN": "s3cret", "REGISTRY_LOG_LEVEL": "DEBUG"})
    assert (s.host, s.port, s.instance_ttl_s, s.sweep_interval_s, s.auth_token, s.log_level) == (
        "127.0.0.1", 4000, 1.5, 0.1, "s3cret", "debug")
    assert s.redis is not None and s.redis.mode is RedisMode.STANDALONE and s.redis.db == 2
    assert s.ttl_ms == 1500


def test_flags_win_over_the_environment() -> None:
    s = load_settings(["--port", "5000", "--instance-ttl", "3", "--redis-url", "redis://a:1/0"],
                      {"REGISTRY_PORT": "4000", "REGISTRY_INSTANCE_TTL": "9", "REDIS_URL": "redis://b:2/0"})
    assert (s.port, s.instance_ttl_s) == (5000, 3.0)
    assert s.redis is not None and s.redis.nodes == (("a", 1),)


@pytest.mark.parametrize(("argv", "env", "names"), [
    (["--port", "70000"], {}, "--port"),
    ([], {"REGISTRY_PORT": "http"}, "REGISTRY_PORT"),
    (["--instance-ttl", "-1"], {}, "--instance-ttl"),
    ([], {"REGISTRY_INSTANCE_TTL": "nan"}, "REGISTRY_INSTANCE_TTL"),
    ([], {"REGISTRY_SWEEP_INTERVAL": "0"}, "REGISTRY_SWEEP_INTERVAL"),
    ([], {"REDIS_URL": "not a url"}, "REDIS_URL"),
    (["--max-in-flight", "0"], {}, "--max-in-flight"),
    ([], {"REGISTRY_MAX_IN_FLIGHT": "many"}, "REGISTRY_MAX_IN_FLIGHT"),
    ([], {"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
    ([], {"REDIS_URL": "redis://localhost:99999/0"}, "REDIS_URL"),
    ([], {"REGISTRY_LOG_LEVEL": "loud"}, "REGISTRY_LOG_LEVEL"),
    ([], {"REGISTRY_HOST": "bad host!"}, "REGISTRY_HOST"),
    (["--no-such-flag"], {}, "unrecognized"),
])
def test_bad_values_raise_a_config_error_naming_the_setting(argv: list[str], env: dict[str, str],
                                                            names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings(argv, env)


def test_the_in_flight_limit_comes_from_the_flag_over_the_environment() -> None:
    assert load_settings([], {}).max_in_flight == 1024
    assert load_settings([], {"REGISTRY_MAX_IN_FLIGHT": "64"}).max_in_flight == 64
    assert load_settings(["--max-in-flight", "32"], {"REGISTRY_MAX_IN_FLIGHT": "64"}).max_in_flight == 32


def test_sentinel_and_cluster_urls_parse_into_their_nodes() -> None:
    sentinel = parse_redis_url("redis+sentinel://:pw@h1:26379,h2:26380/mymaster/3")
    assert (sentinel.mode, sentinel.nodes, sentinel.master_name, sentinel.db, sentinel.password) == (
        RedisMode.SENTINEL, (("h1", 26379), ("h2", 26380)), "mymaster", 3, "pw")
    assert "pw" not in repr(sentinel)
    cluster = parse_redis_url("redis+cluster://h1:7000,h2:7001")
    assert (cluster.mode, cluster.nodes) == (RedisMode.CLUSTER, (("h1", 7000), ("h2", 7001)))
    with pytest.raises(ConfigError, match="master name"):
        parse_redis_url("redis+sentinel://h1:26379")


def test_unix_and_tls_urls_are_standalone() -> None:
    assert parse_redis_url("unix:///run/redis.sock").mode is RedisMode.STANDALONE
    assert parse_redis_url("rediss://:pw@example.com:6380/0").mode is RedisMode.STANDALONE


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_help_shows_every_settings_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(["--help"], {})
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    options = re.findall(r"(--[a-z-]+) [A-Z_]+ (.*?)(?= --[a-z-]+ [A-Z_]+ |$)", text.split(" options: ", 1)[1])
    assert len(options) >= 13
    for flag, help_text in options:
        assert "default" in help_text, f"{flag}: {help_text}"
    defaults = Settings()
    for shown in (f"default {defaults.port}", f"default {defaults.host}", f"default {defaults.instance_ttl_s:g}",
                  f"default {defaults.sweep_interval_s:g}", f"default {defaults.max_watchers}",
                  f"default {defaults.read_timeout_s:g}", f"default {defaults.log_level}",
                  f"default {defaults.log_format}"):
        assert shown in text, shown


def test_service_retention_from_env_or_flag_and_bad_values_name_the_setting() -> None:
    assert load_settings([], {}).service_retention_s == 3600.0
    assert load_settings([], {"REGISTRY_SERVICE_RETENTION": "600"}).service_retention_s == 600.0
    assert load_settings(["--service-retention", "30"], {"REGISTRY_SERVICE_RETENTION": "600"}).service_retention_s == 30
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ConfigError, match="REGISTRY_SERVICE_RETENTION/--service-retention"):
            load_settings([], {"REGISTRY_SERVICE_RETENTION": bad})


def test_heartbeats_are_spaced_unless_turned_off() -> None:
    assert load_settings([], {}).pace_heartbeats is True
    assert load_settings([], {"REGISTRY_PACE_HEARTBEATS": "off"}).pace_heartbeats is False
    assert load_settings(["--pace-heartbeats", "on"], {"REGISTRY_PACE_HEARTBEATS": "off"}).pace_heartbeats is True
    with pytest.raises(ConfigError, match="REGISTRY_PACE_HEARTBEATS/--pace-heartbeats"):
        load_settings([], {"REGISTRY_PACE_HEARTBEATS": "sometimes"})
