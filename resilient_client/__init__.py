"""A resilient asyncio client for the service registry: registration, discovery, and calls by service
name with round-robin, failover, retries and one circuit breaker per instance.

Register a service with :class:`ServiceRegistryManager`, call others with :class:`ResilientClient`. The
events a client and a manager report are in :mod:`resilient_client.hooks`; the same classes for
synchronous code are in :mod:`resilient_client.sync`.
"""

from resilient_client.client import ResilientClient
from resilient_client.config import BackoffConfig, BreakerConfig, ClientConfig, ManagerConfig, WatchConfig
from resilient_client.errors import (
    AttemptTimeoutError,
    BreakerRejectedError,
    CircuitOpenError,
    ConnectError,
    ConnectionLostError,
    RegistryRequestError,
    RegistryUnavailableError,
    ResilientClientError,
    ServiceUnavailableError,
    TransportError,
)
from resilient_client.lifecycle import attach_to_aiohttp, install_signal_handlers, registry_lifespan, shut_down
from resilient_client.manager import ServiceRegistryManager
from resilient_client.metrics import aiohttp_metrics_handler, client_metrics
from resilient_client.model import ServiceInstance, Status
from resilient_client.picker import Picker, RandomPicker, RoundRobinPicker
from resilient_client.response import Response

__all__ = [
    "AttemptTimeoutError",
    "BackoffConfig",
    "BreakerConfig",
    "BreakerRejectedError",
    "CircuitOpenError",
    "ClientConfig",
    "ConnectError",
    "ConnectionLostError",
    "ManagerConfig",
    "Picker",
    "RandomPicker",
    "RegistryRequestError",
    "RegistryUnavailableError",
    "ResilientClient",
    "ResilientClientError",
    "Response",
    "RoundRobinPicker",
    "ServiceInstance",
    "ServiceRegistryManager",
    "ServiceUnavailableError",
    "Status",
    "TransportError",
    "WatchConfig",
    "aiohttp_metrics_handler",
    "attach_to_aiohttp",
    "client_metrics",
    "install_signal_handlers",
    "registry_lifespan",
    "shut_down",
]
