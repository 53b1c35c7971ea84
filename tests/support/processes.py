"""Real processes for tests: started in their own process group, bounded in time, killed as a group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.polling import wait_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A child process in its own session; ``stop``/``kill`` signal the whole group."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        self._log = log
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and reap the leader."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, wait up to ``timeout`` seconds, then SIGKILL it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.signal_group(signal.SIGKILL)  # leftovers such as resource trackers
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def http_status(url: str, timeout: float = 2.0) -> int:
    """The status code of a GET, or 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


@dataclass
class RegistryProcess(ManagedProcess):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 20.0) -> None:
        wait_until(lambda: http_status(self.url + "/healthz") == 200 or self._died(), timeout=timeout,
                   message=f"registry on {self.url} to be healthy")
        if not self.alive():
            raise AssertionError(f"registry exited early:\n{self.log_text()}")

    def wait_listening(self, timeout: float = 20.0) -> None:
        wait_until(lambda: http_status(self.url + "/healthz") in (200, 503) or self._died(), timeout=timeout,
                   message=f"registry on {self.url} to answer")
        if not self.alive():
            raise AssertionError(f"registry exited early:\n{self.log_text()}")

    def _died(self) -> bool:
        return not self.alive()


def start_registry(tmp_dir: Path, *, redis_url: str | None, ttl: float = 90.0, sweep: float = 1.0,
                   extra_env: Mapping[str, str] | None = None, port: int | None = None,
                   name: str = "registry", wrapper: Sequence[str] = ()) -> RegistryProcess:
    """Start ``registry-server`` as a user would, on 127.0.0.1 and a free port (under ``wrapper``, a
    command such as valgrind's, when given)."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "REDIS_URL"))}
    env.update({"REGISTRY_HOST": "127.0.0.1", "REGISTRY_PORT": str(port),
                "REGISTRY_INSTANCE_TTL": str(ttl), "REGISTRY_SWEEP_INTERVAL": str(sweep),
                "REGISTRY_LOG_LEVEL": "info"})
    if redis_url:
        env["REDIS_URL"] = redis_url
    if extra_env:
        env.update(extra_env)
    exe = Path(sys.executable).with_name("registry-server")
    args = [str(exe)] if exe.exists() else [sys.executable, "-m", "registry_server"]
    proc = RegistryProcess(args=[*wrapper, *args], env=env, log_path=tmp_dir / f"{name}-{port}.log", port=port)
    proc.start()
    return proc


@contextlib.contextmanager
def running_registry(tmp_dir: Path, **kwargs: object) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_dir, **kwargs)  # type: ignore[arg-type]
    try:
        proc.wait_listening()
        yield proc
    finally:
        proc.stop()


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
