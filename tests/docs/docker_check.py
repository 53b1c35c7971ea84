"""``docker`` as the documentation tests run it: with a Compose plugin, ``docker compose config`` validates a
compose file (it needs no engine); without an engine, every file, build stage, service, variable and flag a
documented command names must exist. Run as ``python3 -m tests.docs.docker_check <docker arguments>``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

_VALUE_OPTIONS = {"-f", "--file", "-t", "--tag", "-p", "--publish", "-e", "--env", "--name", "--target",
                  "-v", "--volume", "--network"}


def _options(args: list[str], *, command_follows: bool = False) -> tuple[dict[str, list[str]], list[str]]:
    """Options with their values, and the positional arguments, of one docker command line; with
    ``command_follows`` (``docker run``), everything after the first positional argument is positional."""
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUE_OPTIONS:
            options.setdefault(arg, []).append(args[i + 1])
            i += 2
        elif arg.startswith("-") and not (command_follows and positional):
            options.setdefault(arg, []).append("")
            i += 1
        else:
            positional.append(arg)
            i += 1
    return options, positional


def _registry_settings() -> str:
    """The registry's help text: every flag and every environment variable it reads."""
    exe = Path(sys.executable).with_name("registry-server")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    return out.stdout


def check_build(args: list[str]) -> None:
    options, positional = _options(args)
    (context,) = positional
    dockerfile = Path(options.get("-f", [str(Path(context) / "Dockerfile")])[0])
    assert Path(context).is_dir(), f"build context {context} does not exist"
    assert dockerfile.is_file(), f"{dockerfile} does not exist"
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", dockerfile.read_text(), re.MULTILINE | re.IGNORECASE)
    for target in options.get("--target", []):
        assert target in stages, f"{dockerfile} has no stage {target}"
    for source in re.findall(r"^COPY\s+(?!--from)(\S+)", dockerfile.read_text(), re.MULTILINE):
        assert (Path(context) / source).exists(), f"{dockerfile} copies {source}, which is not in {context}"


def check_run(args: list[str]) -> None:
    options, positional = _options(args, command_follows=True)
    image, *command = positional
    assert image == "service-registry", f"the documented image is service-registry, not {image}"
    settings = _registry_settings()
    for assignment in options.get("-e", []):
        name = assignment.split("=", 1)[0]
        assert name in settings, f"registry-server reads no {name}"
    for flag in (arg for arg in command if arg.startswith("--")):
        assert flag.split("=", 1)[0] in settings, f"registry-server has no flag {flag}"


def check_compose(args: list[str]) -> None:
    options, positional = _options(args)
    (compose_file,) = options["-f"]
    subcommand, *services = positional
    assert subcommand in {"up", "down", "stop", "start", "kill", "restart", "ps", "logs", "config"}, subcommand
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        subprocess.run(["docker", "compose", "-f", compose_file, "config", "-q"], check=True)
    document = yaml.safe_load(Path(compose_file).read_text())
    for service in services:
        assert service in document["services"], f"{compose_file} has no service {service}"
    base = Path(compose_file).parent
    for name, service in document["services"].items():
        build = service.get("build")
        if isinstance(build, dict):
            context = base / build.get("context", ".")
            assert context.is_dir(), f"{name}: build context {context} does not exist"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: no Dockerfile"
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (base / source).exists(), f"{name} mounts {source}, which does not exist"


def main(argv: list[str]) -> int:
    command, *args = argv
    checks = {"build": check_build, "run": check_run, "compose": check_compose}
    checks[command](args)
    print(f"checked: docker {' '.join(argv)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
