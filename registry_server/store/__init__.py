"""Instance stores: the protocol, the embedded memory store and the Redis store."""

from registry_server.store.base import InstanceStore
from registry_server.store.memory import MemoryStore
from registry_server.store.redis_store import RedisStore

__all__ = ["InstanceStore", "MemoryStore", "RedisStore"]
