"""A real Redis for tests: testcontainers when a Docker engine answers, else the ``redis-server`` binary.

The binary variant runs on a free loopback port in its own process group, so tests can SIGKILL it and
start it again on the same port (empty, or from its own data directory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.processes import free_port


class RedisUnavailableError(RuntimeError):
    """Neither a Docker engine nor a ``redis-server`` binary could give us a Redis."""


def _ping(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_command(port: int, *words: str) -> str:
    """Send one command to a Redis on 127.0.0.1 and return its raw reply (for test set-ups, not the code)."""
    payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload.encode())
        return sock.recv(65536).decode(errors="replace")


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class RedisServer:
    """A ``redis-server`` child on 127.0.0.1; restartable on the same port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, persist: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server binary not found (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if persist else "no", "--appendfsync", "always",
                "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"]
        log = (self.data_dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(lambda: _ping(self.port) or self.proc is None or self.proc.poll() is not None,
                   timeout=15, message=f"redis-server on port {self.port}")
        if self.proc.poll() is not None:
            raise RedisUnavailableError(f"redis-server exited: {(self.data_dir / 'redis.log').read_text()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        wait_until(lambda: not _ping(self.port), timeout=5, message="redis to stop answering")

    def restart(self, *, empty: bool = True, persist: bool = False) -> None:
        self.kill()
        if empty:
            for name in ("appendonlydir", "dump.rdb"):
                path = self.data_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        self.start(persist=persist)

    def stop(self) -> None:
        self.kill()

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")


@contextlib.contextmanager
def redis_url_for_session(tmp_dir: Path) -> Iterator[tuple[str, RedisServer | None]]:
    """A Redis URL for the whole test session, and the restartable server when we own the binary."""
    if docker_engine_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0", None
        return
    server = RedisServer(data_dir=tmp_dir / "redis-session")
    server.start()
    try:
        yield server.url, server
    finally:
        server.stop()


def wait_gone(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _ping(port) and time.monotonic() < deadline:
        time.sleep(0.05)
