"""Every shell and Python block of README.md and docs/ runs, against a real registry process.

A block reads the registry's address from ``SERVICE_REGISTRY_URL`` (and ``REGISTRY_PORT`` when it starts a
registry itself). A shell block with no way to the registry (no curl, registryctl or Python program other
than the test collection, and neither variable) gets an address where nothing listens, not a registry: one
that reached for it would fail. Shell blocks run under bash with ``set -e`` in the repository root, with a few commands
standing in for what cannot run inside a test:

- ``registry-server`` is started in the background and waited for until its port accepts connections; the
  block's process group, stopped at the end, takes it down;
- ``curl`` fails on an HTTP error unless the block prints the status itself (``-w``); then the statuses
  printed must be those its comments promise (``# 403``);
- ``docker`` is checked by ``tests.docs.docker_check`` (no Docker engine is assumed);
- ``pip install`` runs with ``--dry-run`` (it resolves against constraints.txt without changing the venv);
- ``python3 -m pytest`` only collects, since running the suite from inside it would recurse.

Python blocks run in a process of their own, inside an asyncio runner when they ``await`` at top level. A
block that runs a service (``web.run_app``) is started on a free port and must register itself, then
deregister on SIGTERM; a block that names such a service's name gets two instances of it running first.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support.fenced import FencedBlock, fenced_blocks
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, free_port, start_registry

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
ALL_BLOCKS = [block for page in PAGES for block in fenced_blocks(page) if block.language in SHELL | {"python"}]
BLOCKS = list({(block.language, block.text): block for block in reversed(ALL_BLOCKS)}.values())[::-1]
"""Each distinct block once, labelled by where it first appears (the set-up block recurs on several pages)."""
BLOCK_TIMEOUT_S = 100.0

_STARTS_REGISTRY = re.compile(r"(?:^|&&|;|\|\|)\s*(?:\w+=\S*\s+)*registry-server(?![\w-])(?!.*--help)", re.MULTILINE)
_REACHES_REGISTRY = re.compile(r"\b(?:curl|registryctl)\b|\bpython3?\b(?! -m pytest\b)|REGISTRY_(?:URL|PORT)")
_SERVICE_NAME = re.compile(r"attach_to_aiohttp\([^,]+,[^,]+,\s*\"(?P<name>\w+)\"")

PRELUDE = r"""
set -e
registry-server() {
  case " $* " in *" --help "*|*" -h "*) command registry-server "$@"; return;; esac
  command registry-server "$@" &
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null && return 0
    kill -0 $! 2>/dev/null || { echo "registry-server exited" >&2; return 1; }
    sleep 0.05
  done
  echo "registry-server never listened on $REGISTRY_PORT" >&2; return 1
}
curl() {
  case " $* " in
    *" -w "*|*" --write-out "*) command curl "$@";;
    *) local rc=0; command curl --fail-with-body "$@" || rc=$?; echo; return $rc;;
  esac
}
docker() { python3 -m tests.docs.docker_check "$@"; }
"""

REWRITES = [
    (re.compile(r"\bpip install "), "pip install --dry-run --quiet "),
    (re.compile(r"\bpython3 -m pytest\b"), "python3 -m pytest --collect-only -q"),
]

RUNNER = """
import ast, asyncio, sys
path = sys.argv[1]
code = compile(open(path, encoding="utf-8").read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def _service_blocks() -> dict[str, FencedBlock]:
    services: dict[str, FencedBlock] = {}
    for block in BLOCKS:
        found = _SERVICE_NAME.search(block.text)
        if block.language == "python" and "run_app(" in block.text and found:
            services.setdefault(found["name"], block)
    return services


SERVICES = _service_blocks()


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bytecode shared by the blocks' Python processes: the package's compilation, and pytest's assertion
    rewriting of its plugins (hypothesis, schemathesis: seconds a run), are paid once, not in every block."""
    return tmp_path_factory.mktemp("pycache")


def _env(tmp_path: Path, registry_port: int, pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REGISTRY_", "REDIS_URL", "SERVICE_REGISTRY_", "PORT", "HOST"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode is written, under PYTHONPYCACHEPREFIX only
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "SERVICE_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
        "SERVICE_REGISTRY_HEARTBEAT_INTERVAL": "1000",
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(registry_port),
        "REGISTRY_LOG_LEVEL": "warning",
        "TMPDIR": str(tmp_path),
        "PYTHONPYCACHEPREFIX": str(pycache),
        "NO_MKDOCS_2_WARNING": "1",
    })
    return env


def _instances_on(registry_url: str, port: int) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{registry_url}/instances", timeout=5) as resp:
        instances: list[dict[str, object]] = json.load(resp)["instances"]
    return [inst for inst in instances if inst["port"] == port]


@contextmanager
def _running_service(block: FencedBlock, tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[int, ManagedProcess]]:
    """A service block started on a free port, once it has registered itself."""
    port = free_port()
    script = tmp_path / f"service-{port}.py"
    script.write_text(block.text)
    proc = ManagedProcess(args=[sys.executable, "-c", RUNNER, str(script)], env={**env, "PORT": str(port)},
                          log_path=tmp_path / f"service-{port}.log").start()
    try:
        wait_until(lambda: _instances_on(env["SERVICE_REGISTRY_URL"], port) or not proc.alive(), timeout=30,
                   message=f"the service of {block.label(REPO)} to register on port {port}")
        assert proc.alive(), f"the service exited:\n{proc.log_text()}"
        yield port, proc
    finally:
        proc.stop()


def _run(args: list[str], tmp_path: Path, env: dict[str, str], name: str) -> tuple[int | None, str]:
    proc = ManagedProcess(args=args, env=env, log_path=tmp_path / f"{name}.log").start()
    assert proc.proc is not None
    try:
        returncode = proc.proc.wait(timeout=BLOCK_TIMEOUT_S)
    finally:
        proc.stop()  # the block's whole process group, background servers included
    return returncode, proc.log_text()


def _expected_statuses(script: str) -> list[str]:
    """The statuses a block's comments promise (``# 403``) for the curl commands that print theirs (``-w``)."""
    commands = re.sub(r"\\\n", " ", script).splitlines()
    return [found[1] for command in commands
            if "curl " in command and " -w " in command and (found := re.search(r"#\s*(\d{3})\b", command))]


def _shell_script(block: FencedBlock) -> str:
    text = block.text
    for pattern, replacement in REWRITES:
        text = pattern.sub(replacement, text)
    return PRELUDE + text


@pytest.mark.integration
@pytest.mark.parametrize("block", BLOCKS, ids=[block.label(REPO) for block in BLOCKS])
def test_block_runs(block: FencedBlock, tmp_path: Path, pycache: Path) -> None:
    with ExitStack() as stack:
        if block.language in SHELL and _STARTS_REGISTRY.search(block.text):
            port = free_port()  # the block starts its own registry, on REGISTRY_PORT
        elif block.language in SHELL and not _REACHES_REGISTRY.search(block.text):
            port = free_port()  # nothing listens there
        else:
            registry: RegistryProcess = start_registry(tmp_path, redis_url=None, ttl=5.0, sweep=0.2)
            stack.callback(registry.stop)
            registry.wait_healthy()
            port = registry.port
        env = _env(tmp_path, port, pycache)

        if block.language == "python" and "run_app(" in block.text:
            service_port, service = stack.enter_context(_running_service(block, tmp_path, env))
            service.stop()  # SIGTERM: the service deregisters on its way out
            assert service.proc is not None and service.proc.returncode == 0, service.log_text()
            assert _instances_on(env["SERVICE_REGISTRY_URL"], service_port) == []
            return

        for name, service_block in SERVICES.items():
            if f'"{name}"' in block.text or re.search(rf"\b{name}\b", block.text):
                for _ in range(2):
                    stack.enter_context(_running_service(service_block, tmp_path, env))

        if block.language == "python":
            script = tmp_path / "block.py"
            script.write_text(block.text)
            returncode, output = _run([sys.executable, "-c", RUNNER, str(script)], tmp_path, env, "block")
        else:
            script = tmp_path / "block.sh"
            script.write_text(_shell_script(block))
            returncode, output = _run(["bash", str(script)], tmp_path, env, "block")
        assert returncode == 0, f"{block.label(REPO)} failed ({returncode}):\n{output}"
        if block.language in SHELL:
            assert re.findall(r"^(\d{3})$", output, re.MULTILINE) == _expected_statuses(block.text), output


def test_the_blocks_are_found() -> None:
    """The run covers the pages' blocks: the set-up block, a service and its caller among them."""
    labels = {block.label(REPO) for block in BLOCKS}
    assert any(label.startswith("README.md:") for label in labels)
    assert {(block.language, block.text) for block in ALL_BLOCKS} == {(block.language, block.text) for block in BLOCKS}
    assert "Greeter" in SERVICES
    assert any(block.language == "python" and "ResilientClient" in block.text for block in BLOCKS)
