"""Prometheus HTTP service discovery: every ``UP`` instance as one target group (pure).

Format: https://prometheus.io/docs/prometheus/latest/http_sd/ — a JSON list of
``{"targets": ["host:port"], "labels": {...}}``. Only ``__meta_*`` labels (and ``__scheme__``) are set,
so nothing collides with the labels of the scraped metrics (e.g. the client's ``service``); relabel
what you want to keep.
"""

from __future__ import annotations

from typing import Any

from registry_server.interop.labels import metadata_labels
from registry_server.model import Instance, InstanceStatus

PREFIX = "__meta_registry_"


def address(instance: Instance) -> str:
    host = f"[{instance.host}]" if ":" in instance.host else instance.host
    return f"{host}:{instance.port}"


def target_group(instance: Instance) -> dict[str, Any]:
    labels = {"__scheme__": instance.scheme,
              PREFIX + "service": instance.name,
              PREFIX + "instance_id": instance.id,
              PREFIX + "version": instance.version,
              PREFIX + "status": instance.status.value,
              PREFIX + "scheme": instance.scheme,
              PREFIX + "health_url": instance.url + instance.health_endpoint,
              **metadata_labels(PREFIX + "metadata_", instance.metadata)}
    return {"targets": [address(instance)], "labels": labels}


def targets(instances: list[Instance]) -> list[dict[str, Any]]:
    """One group per ``UP`` instance, in the order given (the registry's: by id)."""
    return [target_group(inst) for inst in instances if inst.status is InstanceStatus.UP]
