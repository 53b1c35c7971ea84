"""A resilient asyncio client for the service registry: registration, discovery, and calls by service
name with round-robin, failover, retries and one circuit breaker per instance.
"""

from resilient_client.backoff import Backoff, parse_retry_after
from resilient_client.breaker import InstanceBreaker
from resilient_client.breaker_board import BreakerBoard
from resilient_client.cache import DiscoveryCache
from resilient_client.client import ResilientClient
from resilient_client.clock import Clock, SystemClock
from resilient_client.config import BackoffConfig, BreakerConfig, ClientConfig, ManagerConfig, WatchConfig
from resilient_client.discovery import WatchedDiscovery
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
from resilient_client.hooks import (
    BreakerRejected,
    BreakerRemoved,
    BreakerState,
    BreakerStateChanged,
    DiscoveryLookedUp,
    DiscoveryProtected,
    DiscoveryResult,
    Event,
    FailedOver,
    HeartbeatOutcome,
    HeartbeatSent,
    Hook,
    ProtectionOutcome,
    RegistrationAttempted,
    RegistrationOutcome,
    RequestFinished,
    RequestOutcome,
    Retried,
    WatchState,
    WatchStateChanged,
)
from resilient_client.lifecycle import attach_to_aiohttp, install_signal_handlers, registry_lifespan, shut_down
from resilient_client.manager import Registration, ServiceRegistryManager
from resilient_client.metrics import ClientMetrics, aiohttp_metrics_handler, client_metrics
from resilient_client.model import ServiceAnswer, ServiceInstance, Status
from resilient_client.picker import Picker, RandomPicker, RoundRobinPicker
from resilient_client.protection import ServiceView, admit
from resilient_client.response import Response
from resilient_client.transport import AiohttpTransport, OutgoingRequest, Transport
from resilient_client.watch import ServiceWatches

__all__ = [
    "AiohttpTransport",
    "AttemptTimeoutError",
    "Backoff",
    "BackoffConfig",
    "BreakerBoard",
    "BreakerConfig",
    "BreakerRejected",
    "BreakerRejectedError",
    "BreakerRemoved",
    "BreakerState",
    "BreakerStateChanged",
    "CircuitOpenError",
    "ClientConfig",
    "ClientMetrics",
    "Clock",
    "ConnectError",
    "ConnectionLostError",
    "DiscoveryCache",
    "DiscoveryLookedUp",
    "DiscoveryProtected",
    "DiscoveryResult",
    "Event",
    "FailedOver",
    "HeartbeatOutcome",
    "HeartbeatSent",
    "Hook",
    "InstanceBreaker",
    "ManagerConfig",
    "OutgoingRequest",
    "Picker",
    "ProtectionOutcome",
    "RandomPicker",
    "Registration",
    "RegistrationAttempted",
    "RegistrationOutcome",
    "RegistryRequestError",
    "RegistryUnavailableError",
    "RequestFinished",
    "RequestOutcome",
    "ResilientClient",
    "ResilientClientError",
    "Response",
    "Retried",
    "RoundRobinPicker",
    "ServiceAnswer",
    "ServiceInstance",
    "ServiceRegistryManager",
    "ServiceUnavailableError",
    "ServiceView",
    "ServiceWatches",
    "Status",
    "SystemClock",
    "Transport",
    "TransportError",
    "WatchConfig",
    "WatchState",
    "WatchStateChanged",
    "WatchedDiscovery",
    "admit",
    "aiohttp_metrics_handler",
    "attach_to_aiohttp",
    "client_metrics",
    "install_signal_handlers",
    "parse_retry_after",
    "registry_lifespan",
    "shut_down",
]
