"""registryctl against a live registry-server process (writes guarded by a token, lease tokens enforced)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registryctl import main
from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, free_port, running_registry

pytestmark = pytest.mark.integration

WRITE = "write-token-of-the-registryctl-tests"
ADMIN = "admin-token-of-the-registryctl-tests"
LEASE = "lease-token-of-the-registryctl-tests"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    env = {"REGISTRY_AUTH_TOKEN": WRITE, "REGISTRY_ADMIN_TOKEN": ADMIN}
    with running_registry(tmp_path_factory.mktemp("ctl"), redis_url=None, ttl=30.0, sweep=0.1,
                          extra_env=env) as proc:
        proc.wait_healthy()
        yield proc


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)


def ctl(registry: RegistryProcess, *args: str, token: str | None = WRITE, env: dict[str, str] | None = None) -> Run:
    environ = {"SERVICE_REGISTRY_URL": registry.url, **({"SERVICE_REGISTRY_AUTH_TOKEN": token} if token else {}),
               **(env or {})}
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), env=environ, out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue())


def one_error_line(run: Run, code: int = 1) -> str:
    assert run.code == code, (run.out, run.err)
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("registryctl: error: "), run.err
    return lines[0]


def register(registry: RegistryProcess, iid: str, name: str, *extra: str) -> Run:
    run = ctl(registry, "register", "--name", name, "--port", "3001", "--host", "10.0.0.9", "--id", iid,
              "--lease-token", LEASE, *extra)
    assert run.code == 0, run.err
    return run


def test_a_token_that_starts_with_a_dash_is_given_with_an_equals_sign(registry: RegistryProcess) -> None:
    """A generated token starts with "-" one time in 64 (the URL-safe alphabet): as the docs write it,
    ``--lease-token="$LEASE"``, it is still the option's value."""
    token = "-" + "t" * 23
    run = ctl(registry, "register", "--name", "Dash", "--port", "3001", "--host", "10.0.0.9", "--id", "dash-1",
              f"--lease-token={token}")
    assert run.code == 0, run.err
    assert f"lease token: {token}" in run.out
    assert ctl(registry, "deregister", "dash-1", f"--lease-token={token}").code == 0


def test_register_prints_the_instance_and_its_lease_token(registry: RegistryProcess) -> None:
    run = register(registry, "reg-1", "Reg", "--version", "1.0.0", "-m", "zone=eu-1", "-m", "team=core")
    assert run.out.splitlines()[0] == "registered reg-1"
    assert f"lease token: {LEASE}" in run.out
    assert "metadata:    team=core,zone=eu-1" in run.out
    again = register(registry, "reg-1", "Reg", "--json")
    assert again.out.count("re-registered") == 0 and again.json()["lease_token"] == LEASE


def test_ls_lists_services_with_counts_by_status(registry: RegistryProcess) -> None:
    register(registry, "ls-1", "Ls")
    register(registry, "ls-2", "Ls", "--status", "DOWN")
    run = ctl(registry, "ls")
    assert run.code == 0
    header, *rows = run.out.splitlines()
    assert header.split() == ["SERVICE", "INSTANCES", "UP", "DOWN", "STARTING", "STOPPING"]
    assert ["Ls", "2", "1", "1", "0", "0"] in [r.split() for r in rows]
    services = {s["name"]: s for s in ctl(registry, "ls", "--json").json()["services"]}
    assert services["Ls"]["statuses"] == {"UP": 1, "DOWN": 1}


def test_show_lists_a_service_s_instances_with_filters(registry: RegistryProcess) -> None:
    register(registry, "show-1", "Show", "--version", "2.0")
    register(registry, "show-2", "Show", "--status", "STARTING")
    lines = ctl(registry, "show", "Show").out.splitlines()
    assert lines[0].split()[:5] == ["ID", "SERVICE", "ADDRESS", "VERSION", "STATUS"]
    assert [line.split()[:5] for line in lines[1:]] == [["show-1", "Show", "10.0.0.9:3001", "2.0", "UP"],
                                                        ["show-2", "Show", "10.0.0.9:3001", "-", "STARTING"]]
    only = ctl(registry, "show", "Show", "--status", "STARTING", "--json").json()
    assert [i["id"] for i in only["instances"]] == ["show-2"]
    assert ctl(registry, "show", "Nobody").out.strip() == "no live instances of Nobody"


def test_get_shows_one_instance_and_a_missing_one_is_one_error_line(registry: RegistryProcess) -> None:
    register(registry, "get-1", "Get")
    run = ctl(registry, "get", "get-1")
    assert "url:         http://10.0.0.9:3001" in run.out and "lease token" not in run.out
    assert ctl(registry, "get", "get-1", "--json").json()["id"] == "get-1"
    line = one_error_line(ctl(registry, "get", "no-such-id"))
    assert line == "registryctl: error: 404 instance_not_found: no live instance with id 'no-such-id'"


def test_heartbeat_needs_the_lease_token_and_can_change_the_status(registry: RegistryProcess) -> None:
    register(registry, "hb-1", "Hb")
    assert "403 lease_token_mismatch" in one_error_line(ctl(registry, "heartbeat", "hb-1"))
    run = ctl(registry, "heartbeat", "hb-1", "--lease-token", LEASE, "--status", "DOWN")
    assert run.code == 0 and run.out.startswith("renewed hb-1: DOWN, expires in ")
    assert httpx.get(registry.url + "/instances/hb-1").json()["status"] == "DOWN"


def test_deregister_with_the_lease_token_or_the_admin_token(registry: RegistryProcess) -> None:
    register(registry, "dr-1", "Dr")
    register(registry, "dr-2", "Dr")
    assert ctl(registry, "deregister", "dr-1", "--lease-token", LEASE).out.strip() == "deregistered dr-1"
    assert ctl(registry, "deregister", "dr-2", "--json", token=ADMIN).json() == {"deregistered": "dr-2"}
    assert httpx.get(registry.url + "/services/Dr").json()["instances"] == []
    assert "404 instance_not_found" in one_error_line(ctl(registry, "deregister", "dr-1", "--lease-token", LEASE))


def test_a_write_without_the_token_is_refused_with_the_registry_s_message(registry: RegistryProcess) -> None:
    line = one_error_line(ctl(registry, "register", "--name", "X", "--port", "1", token=None))
    assert line == "registryctl: error: 401 unauthorized: this endpoint needs 'Authorization: Bearer <token>'"
    assert "422 validation_error" in one_error_line(ctl(registry, "register", "--name=-bad", "--port", "1"))


def test_flags_win_over_the_environment_and_a_comma_list_fails_over(registry: RegistryProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert ctl(registry, "ls", env={"SERVICE_REGISTRY_URL": f"{dead},{registry.url}"}).code == 0
    line = one_error_line(ctl(registry, "ls", "--url", dead))
    assert line.startswith(f"registryctl: error: registry unreachable: {dead} (")
    assert ctl(registry, "--url", registry.url, "ls", env={"SERVICE_REGISTRY_URL": dead}).code == 0


@pytest.mark.parametrize("args", [["show"], ["frobnicate"], ["register", "--name", "x", "--port", "p"],
                                  ["register", "--name", "x", "--port", "1", "-m", "novalue"],
                                  ["ls", "--url", "ftp://x"], ["ls", "--timeout", "0"],
                                  ["watch", "A", "--wait", "soon"], []])
def test_bad_arguments_exit_2_with_one_line(registry: RegistryProcess, args: list[str]) -> None:
    one_error_line(ctl(registry, *args), code=2)


def _script() -> list[str]:
    exe = Path(sys.executable).with_name("registryctl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "registryctl"]


def test_the_console_script_exits_non_zero_with_one_line_when_the_registry_is_down() -> None:
    env = {**os.environ, "SERVICE_REGISTRY_URL": f"http://127.0.0.1:{free_port()}"}
    done = subprocess.run([*_script(), "ls"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "registry unreachable" in done.stderr


class Lines:
    """Collects a child process's stdout lines in a thread, so the test can poll them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True).start()

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_watch_prints_each_change_of_a_service_as_it_happens(registry: RegistryProcess, as_json: bool) -> None:
    name = "WatchJson" if as_json else "Watch"
    register(registry, f"{name}-1", name)
    env = {**os.environ, "SERVICE_REGISTRY_URL": registry.url, "SERVICE_REGISTRY_AUTH_TOKEN": WRITE,
           "PYTHONUNBUFFERED": "1"}
    args = [*_script(), "watch", name, *(["--json"] if as_json else [])]
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out = Lines(proc)
            wait_until(lambda: out.has(f"{name}-1"), timeout=10, message="the first view")
            # One change at a time, each printed before the next: changes that land between two answers
            # of a blocking query come in one answer (in the table, still a line for each instance).
            register(registry, f"{name}-2", name)
            wait_until(lambda: out.has(f"{name}-2"), timeout=5, message="the registration")
            ctl(registry, "heartbeat", f"{name}-1", "--lease-token", LEASE, "--status", "DOWN")
            wait_until(lambda: out.has("DOWN"), timeout=5, message="the status change")
            ctl(registry, "deregister", f"{name}-2", "--lease-token", LEASE)
            if as_json:
                def views() -> list[list[tuple[str, str]]]:
                    return [[(i["id"], i["status"]) for i in json.loads(line)["instances"]] for line in out.lines]
                wait_until(lambda: views()[-1:] == [[(f"{name}-1", "DOWN")]], timeout=5, message="the last view")
                assert [(f"{name}-1", "UP"), (f"{name}-2", "UP")] in views()
            else:
                wait_until(lambda: out.has(f"- {name}-2"), timeout=5, message="the deregistration")
                assert out.has(f"+ {name}-2 10.0.0.9:3001 UP")
                assert out.has(f"~ {name}-1 status UP -> DOWN")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
