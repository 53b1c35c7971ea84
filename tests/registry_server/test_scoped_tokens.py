"""The tokens file as read, and the access rule it sets: roles, scopes, the single-token settings beside it,
the metrics token."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from registry_server.api.access import Access, Role, ServiceNotInScopeError, UnauthorizedError
from registry_server.errors import ConfigError
from registry_server.model import lease_token_hash
from registry_server.settings import Settings, load_settings
from registry_server.tokens_file import ServiceScope, TokenRole, read_tokens_file


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    return str(path)


GOOD = f"""
[[tokens]]
name = "payments"
sha256 = "{sha('pay')}"
role = "write"
services = ["payments", "payments-*"]

[[tokens]]
name = "ops"
sha256 = "{sha('ops')}"
role = "admin"

[[tokens]]
name = "grafana"
sha256 = "{sha('graf')}"
role = "read"
"""


def access_for(tmp_path: Path, text: str = GOOD, **settings: str) -> Access:
    path = write(tmp_path, text)
    return Access(Settings(tokens_file=path, tokens=read_tokens_file(path), **settings))  # type: ignore[arg-type]


def test_the_file_lists_names_roles_digests_and_scopes(tmp_path: Path) -> None:
    tokens = read_tokens_file(write(tmp_path, GOOD))
    assert [(t.name, t.role, t.scope) for t in tokens] == [
        ("payments", TokenRole.WRITE, ServiceScope(("payments", "payments-*"))),
        ("ops", TokenRole.ADMIN, None), ("grafana", TokenRole.READ, None)]
    assert tokens[0].sha256 == hashlib.sha256(b"pay").digest()


@pytest.mark.parametrize(("text", "names"), [
    ("[[tokens]]\nname = 'a'\nsha256 = 'xyz'\nrole = 'write'\n", "sha256"),
    (f"[[tokens]]\nname = 'a'\nsha256 = '{sha('a')}'\nrole = 'owner'\n", "role"),
    (f"[[tokens]]\nname = 'a'\nsha256 = '{sha('a')}'\nrole = 'read'\nservices = ['x']\n", "services"),
    (f"[[tokens]]\nname = 'a'\nsha256 = '{sha('a')}'\nrole = 'write'\nservices = []\n", "services"),
    (f"[[tokens]]\nname = 'a'\nsha256 = '{sha('a')}'\nrole = 'write'\nsecret = 'a'\n", "secret"),
    (f"[[tokens]]\nsha256 = '{sha('a')}'\nrole = 'write'\n", "name"),
    (f"[[tokens]]\nname = 'a'\nsha256 = '{sha('a')}'\nrole = 'write'\n"
     f"[[tokens]]\nname = 'a'\nsha256 = '{sha('b')}'\nrole = 'write'\n", "more than once"),
    ("tokens = [", "TOML"),
])
def test_a_bad_file_is_a_config_error_naming_what_is_wrong(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names) as caught:
        read_tokens_file(write(tmp_path, text))
    assert "REGISTRY_TOKENS_FILE/--tokens-file" in str(caught.value)


def test_the_setting_reads_the_file_at_start_up_from_env_or_flag(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert len(load_settings([], {"REGISTRY_TOKENS_FILE": path}).tokens) == 3
    assert load_settings(["--tokens-file", path], {"REGISTRY_TOKENS_FILE": "/nonexistent"}).tokens_file == path
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings([], {"REGISTRY_TOKENS_FILE": str(tmp_path / "missing.toml")})
    assert load_settings(["--metrics-token", "m"], {"REGISTRY_METRICS_TOKEN": "e"}).metrics_token == "m"


def test_a_scoped_write_token_writes_only_its_services_case_insensitively(tmp_path: Path) -> None:
    grant = access_for(tmp_path).authorize(["pay"], Role.WRITE)
    grant.check("payments")
    grant.check("PAYMENTS")
    grant.check("payments-eu")
    with pytest.raises(ServiceNotInScopeError, match="'payments' may not write service 'orders'"):
        grant.check("orders")
    assert not grant.admin


def test_a_tokens_file_closes_writes_and_its_read_token_closes_reads(tmp_path: Path) -> None:
    access = access_for(tmp_path)
    with pytest.raises(UnauthorizedError):
        access.authorize([], Role.WRITE)
    with pytest.raises(UnauthorizedError):
        access.authorize(["graf"], Role.WRITE)
    with pytest.raises(UnauthorizedError):
        access.authorize([], Role.READ)
    assert access.authorize(["graf"], Role.READ).scope is None
    assert access.authorize(["pay"], Role.READ) is not None
    assert access.authorize(["ops"], Role.WRITE).admin


def test_an_empty_tokens_file_still_closes_writes(tmp_path: Path) -> None:
    access = access_for(tmp_path, "")
    with pytest.raises(UnauthorizedError):
        access.authorize(["anything"], Role.WRITE)
    assert not access.authorize([], Role.READ).admin


def test_the_single_token_settings_keep_working_beside_the_file(tmp_path: Path) -> None:
    access = access_for(tmp_path, auth_token="shared", admin_token="root")
    shared = access.authorize(["shared"], Role.WRITE)
    assert shared.scope is None and not shared.admin
    assert access.authorize(["root"], Role.WRITE).admin


def test_the_strongest_presented_token_wins(tmp_path: Path) -> None:
    access = access_for(tmp_path)
    assert access.authorize(["pay", "ops"], Role.WRITE).admin
    assert access.authorize(["graf", "pay"], Role.WRITE).scope == ServiceScope(("payments", "payments-*"))


def test_reload_replaces_the_tokens_and_a_bad_file_keeps_them(tmp_path: Path) -> None:
    access = access_for(tmp_path)
    path = tmp_path / "tokens.toml"
    path.write_text(f"[[tokens]]\nname = 'new'\nsha256 = '{sha('new')}'\nrole = 'write'\n")
    assert access.reload() == 1
    assert not access.authorize(["new"], Role.WRITE).admin
    with pytest.raises(UnauthorizedError):
        access.authorize(["pay"], Role.WRITE)
    path.write_text("[[tokens]]\nname = 1\n")
    with pytest.raises(ConfigError):
        access.reload()
    assert access.authorize(["new"], Role.WRITE).scope is None


def test_a_derived_lease_token_never_matches_on_the_native_api(tmp_path: Path) -> None:
    grant = access_for(tmp_path).authorize(["pay"], Role.WRITE)
    assert grant.lease_hash("interop-lease:consul:x") == "!"
    assert grant.lease_hash("a-lease-token-of-its-own") == lease_token_hash("a-lease-token-of-its-own")
    assert grant.lease_hash(None) == ""


def test_metrics_take_the_metrics_token_or_the_admin_token(tmp_path: Path) -> None:
    access = access_for(tmp_path, metrics_token="scrape")
    assert access.may_scrape(["scrape"]) and access.may_scrape(["ops"])
    assert not access.may_scrape([]) and not access.may_scrape(["pay"])
    assert Access(Settings()).may_scrape([])
