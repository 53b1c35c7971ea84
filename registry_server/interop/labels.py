"""Prometheus label names from arbitrary metadata keys (pure)."""

from __future__ import annotations

import re

_INVALID = re.compile(r"[^A-Za-z0-9_]")


def sanitize_label_name(key: str) -> str:
    """``key`` as a valid label name: every character outside ``[A-Za-z0-9_]`` becomes ``_``, and a
    leading digit gets a ``_`` in front (as Prometheus's own service discoveries do)."""
    name = _INVALID.sub("_", key)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def metadata_labels(prefix: str, metadata: dict[str, str]) -> dict[str, str]:
    """``{prefix + sanitized key: value}``; keys are taken in sorted order and, when two keys sanitise
    to the same name, the first one wins."""
    labels: dict[str, str] = {}
    for key in sorted(metadata):
        labels.setdefault(prefix + sanitize_label_name(key), metadata[key])
    return labels
