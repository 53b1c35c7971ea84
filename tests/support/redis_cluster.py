"""A real Redis Cluster for tests: three masters from the ``redis-server`` binary on loopback."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port
from tests.support.redis_server import RedisUnavailableError, redis_command


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; Redis wants ports below 55536."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if all(_free(p) for p in (port, port + 10000)):
            return port
    return free_port()


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RedisCluster:
    data_dir: Path
    masters: int = 3
    ports: list[int] = field(default_factory=list)
    procs: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> RedisCluster:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RedisUnavailableError("redis-server/redis-cli not found (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = []
        while len(self.ports) < self.masters:
            port = _cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            node_dir = self.data_dir / str(port)
            node_dir.mkdir(exist_ok=True)
            self.procs.append(ManagedProcess(
                args=[binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                      "--cluster-config-file", str(node_dir / "nodes.conf"), "--cluster-node-timeout", "2000",
                      "--save", "", "--appendonly", "no", "--dir", str(node_dir), "--loglevel", "warning"],
                env={}, log_path=node_dir / "redis.log").start())
        for port in self.ports:
            wait_until(lambda port=port: redis_command(port, "PING").startswith("+PONG"), timeout=15,
                       message=f"cluster node {port}")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in self.ports:
            wait_until(lambda port=port: "cluster_state:ok" in redis_command(port, "CLUSTER", "INFO"), timeout=30,
                       message=f"cluster state ok on {port}")
        return self

    def flushall(self) -> None:
        for port in self.ports:
            assert redis_command(port, "FLUSHALL").startswith("+OK")

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
