"""Redis clients for a :class:`RedisTarget`: standalone, Sentinel or Cluster, all with bounded waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from registry_server.store.redis_url import RedisMode, RedisTarget


class _HiredisPackingConnection(aioredis.Connection):
    """Packs commands with hiredis (C) instead of redis-py's pure-Python packer: on a heartbeat's
    ten-argument EVALSHA this is most of redis-py's own CPU time."""

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str) and " " in head:  # e.g. "SCRIPT LOAD": the server wants separate words
            args = (*head.split(), *args[1:])
        return [hiredis.pack_command(args)]


def connect(target: RedisTarget, *, max_connections: int = 512,
            timeout_s: float = 1.0) -> aioredis.Redis | RedisCluster:
    """A client for ``target`` with bounded waits: a slow or dead Redis fails fast instead of hanging.

    The pool does not block for a free connection (redis-py's blocking pool costs ~80 us per command in
    its condition variable); it is sized well above the concurrency one replica serves, and running out
    answers 503 at once rather than queueing.
    """
    common: dict[str, Any] = {"decode_responses": True, "socket_timeout": timeout_s,
                              "socket_connect_timeout": timeout_s, "retry": Retry(NoBackoff(), 1)}
    if target.mode is RedisMode.STANDALONE:
        if target.url.startswith("redis://"):
            common["connection_class"] = _HiredisPackingConnection
        pool = aioredis.ConnectionPool.from_url(target.url, max_connections=max_connections,
                                                health_check_interval=0, **common)
        return aioredis.Redis(connection_pool=pool)
    if target.mode is RedisMode.SENTINEL:
        from redis.asyncio.sentinel import Sentinel

        sentinel_options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                            "password": target.password}
        # Typed through a Callable: whether redis-py's stubs annotate Sentinel.__init__ varies by release.
        make_sentinel: Callable[..., Sentinel] = Sentinel
        sentinel = make_sentinel(list(target.nodes), sentinel_kwargs=sentinel_options, **common)
        master: aioredis.Redis = sentinel.master_for(target.master_name, db=target.db, password=target.password,
                                                     max_connections=max_connections)
        return master
    nodes = [ClusterNode(host, port) for host, port in target.nodes]
    return RedisCluster(startup_nodes=nodes, password=target.password, max_connections=max_connections,
                        **common)
