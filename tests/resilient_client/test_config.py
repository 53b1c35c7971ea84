import pytest

from resilient_client import ClientConfig, ManagerConfig


def test_defaults_follow_the_spec_table() -> None:
    config = ManagerConfig.from_env({})
    assert config.registry_urls == ("http://localhost:3011",)
    assert (config.heartbeat_interval_ms, config.retry_delay_ms, config.max_retries, config.cache_ttl_ms) == (
        30_000, 10_000, 5, 30_000)
    assert (config.auth_token, config.host, config.port) == (None, None, 3000)


@pytest.mark.parametrize("bind_address", ["0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0"])
def test_a_host_that_is_a_bind_address_counts_as_no_host(bind_address: str) -> None:
    assert ManagerConfig.from_env({"HOST": bind_address}).host is None


def test_environment_values_are_milliseconds_and_a_comma_list_of_registries() -> None:
    config = ManagerConfig.from_env({
        "SERVICE_REGISTRY_URL": "http://a:1/, http://b:2", "SERVICE_REGISTRY_HEARTBEAT_INTERVAL": "300",
        "SERVICE_REGISTRY_RETRY_DELAY": "50", "SERVICE_REGISTRY_MAX_RETRIES": "2",
        "SERVICE_REGISTRY_CACHE_TTL": "1500", "SERVICE_REGISTRY_AUTH_TOKEN": "s3cret", "HOST": "10.0.0.5",
        "PORT": "3001"})
    assert config.registry_urls == ("http://a:1", "http://b:2")
    assert config.heartbeat_interval_s == pytest.approx(0.3)
    assert config.retry_delay_s == pytest.approx(0.05)
    assert config.cache_ttl_s == pytest.approx(1.5)
    assert (config.max_retries, config.auth_token, config.host, config.port) == (2, "s3cret", "10.0.0.5", 3001)


def test_arguments_win_over_the_environment() -> None:
    config = ManagerConfig.from_env({"SERVICE_REGISTRY_URL": "http://env:1", "PORT": "1"},
                                    registry_url="http://arg:2,http://arg:3", port=2, heartbeat_interval_ms=None)
    assert config.registry_urls == ("http://arg:2", "http://arg:3")
    assert config.port == 2
    assert config.heartbeat_interval_ms == 30_000


@pytest.mark.parametrize(("name", "value"), [("SERVICE_REGISTRY_HEARTBEAT_INTERVAL", "soon"),
                                             ("SERVICE_REGISTRY_CACHE_TTL", "-1"),
                                             ("SERVICE_REGISTRY_MAX_RETRIES", "-2"), ("PORT", "x"),
                                             ("SERVICE_REGISTRY_URL", " , ")])
def test_a_bad_environment_value_is_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name.split("_")[-1] if name != "PORT" else "PORT"):
        ManagerConfig.from_env({name: value})


def test_configs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ManagerConfig().port = 1  # type: ignore[misc]


def test_watching_is_on_by_default_and_the_environment_can_turn_it_off_or_change_the_wait() -> None:
    config = ManagerConfig.from_env({})
    assert config.watch.enabled and config.watch.wait_s == 30.0
    assert config.watch_idle_s == 5 * config.cache_ttl_s
    assert config.empty_grace_s == 30.0
    config = ManagerConfig.from_env({"SERVICE_REGISTRY_WATCH": "off", "SERVICE_REGISTRY_WATCH_WAIT": "5000",
                                     "SERVICE_REGISTRY_EMPTY_GRACE": "0"})
    assert (config.watch.enabled, config.watch.wait_s, config.empty_grace_s) == (False, 5.0, 0.0)


@pytest.mark.parametrize(("name", "value"), [("SERVICE_REGISTRY_WATCH", "maybe"),
                                             ("SERVICE_REGISTRY_WATCH_WAIT", "0"),
                                             ("SERVICE_REGISTRY_EMPTY_GRACE", "-1")])
def test_a_bad_watch_setting_is_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        ManagerConfig.from_env({name: value})


def test_client_config_takes_its_zone_from_service_zone() -> None:
    assert ClientConfig.from_env({"SERVICE_ZONE": "eu-1a"}).zone == "eu-1a"
    assert ClientConfig.from_env({"SERVICE_ZONE": ""}).zone is None
    assert ClientConfig.from_env({"SERVICE_ZONE": "eu-1a"}, zone="eu-1b", retry_budget=0.2) == ClientConfig(
        zone="eu-1b", retry_budget=0.2)
    assert (ClientConfig().load_balancer, ClientConfig().retry_budget) == ("round_robin", None)


@pytest.mark.parametrize(("field", "value"), [("load_balancer", "fastest"), ("retry_budget", -0.1),
                                              ("retry_budget_min_per_s", -1.0), ("retry_budget_window_s", 0.0)])
def test_a_bad_client_config_value_is_a_clear_error(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ClientConfig(**{field: value})  # type: ignore[arg-type]
