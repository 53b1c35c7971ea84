"""A real Sentinel deployment for tests: a master, a replica and three sentinels on loopback."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port
from tests.support.redis_server import RedisUnavailableError, redis_command

MASTER_NAME = "registry"


@dataclass
class SentinelDeployment:
    data_dir: Path
    master_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    procs: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{MASTER_NAME}/0"

    def _server(self, name: str, port: int, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server not found (apt-get install redis-server)")
        node_dir = self.data_dir / name
        node_dir.mkdir(parents=True, exist_ok=True)
        self.procs[name] = ManagedProcess(
            args=[binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", str(node_dir), "--loglevel", "warning", *extra],
            env={}, log_path=node_dir / "redis.log").start()
        wait_until(lambda: redis_command(port, "PING").startswith("+PONG"), timeout=15, message=f"{name} on {port}")

    def start(self) -> SentinelDeployment:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server not found (apt-get install redis-server)")
        self._server("master", self.master_port)
        self._server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for n, port in enumerate(self.sentinel_ports):
            conf = self.data_dir / f"sentinel-{n}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.data_dir}\n"
                            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
                            f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            self.procs[f"sentinel-{n}"] = ManagedProcess(
                args=[binary, str(conf), "--sentinel"], env={},
                log_path=self.data_dir / f"sentinel-{n}.log").start()
        for port in self.sentinel_ports:
            wait_until(lambda port=port: str(self.replica_port) in redis_command(
                port, "SENTINEL", "REPLICAS", MASTER_NAME), timeout=30, message=f"sentinel {port} to see the replica")
        return self

    def master_port_now(self) -> int:
        reply = redis_command(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(reply.strip().splitlines()[-1])

    def replica_caught_up(self) -> bool:
        master = redis_command(self.master_port, "INFO", "replication")
        offset = next(line.split(":")[1] for line in master.splitlines() if line.startswith("master_repl_offset"))
        replica = redis_command(self.replica_port, "INFO", "replication")
        mine = next(line.split(":")[1] for line in replica.splitlines() if line.startswith("slave_repl_offset"))
        return offset.strip() == mine.strip()

    def kill_master(self) -> None:
        self.procs["master"].kill()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
