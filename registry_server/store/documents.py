"""Stored registration documents, decoded: parsed from JSON, checked against the text rules every
dialect validates with, and kept in a cache bounded in bytes.

A document that fails to decode (written by an older release, or by hand into the store) is never
allowed to fail a listing: the store skips its instance, logs it once and counts it
(``registry_undecodable_documents_total``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import OrderedDict
from typing import Any

from registry_server.model import DOCUMENT_DEFAULTS, Instance
from registry_server.schemas import plain_text, prose

log = logging.getLogger("registry_server.store")

CACHE_BYTES = 128 * 1024 * 1024
"""The memory the parsed-document cache takes at most, as :func:`footprint` charges each document."""
_LOGGED_LIMIT = 1024


class UndecodableDocumentError(ValueError):
    """A stored document that is not JSON of the registry's shape, or holds text no dialect accepts."""


def _decode(doc: str) -> dict[str, Any]:
    try:
        parsed: dict[str, Any] = {**DOCUMENT_DEFAULTS, **json.loads(doc)}
        for field in ("name", "host", "scheme", "health_endpoint", "version"):
            plain_text(parsed[field])
        prose(parsed["description"])
        if not isinstance(parsed["port"], int):
            raise TypeError("port is not an integer")
        for key, value in parsed["metadata"].items():
            plain_text(key)
            plain_text(value)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise UndecodableDocumentError(f"{type(exc).__name__}: {exc}") from None
    return parsed


def footprint(doc: str, parsed: dict[str, Any]) -> int:
    """About the bytes one cached document takes, at most: the stored text (the cache's key) and the parsed
    copy of it, a fixed allowance for the parsed dictionary, and one for each metadata entry (two strings
    and a slot: a document of 64 short entries takes ten times its text). Measured against resident
    size: within 10 % above it for documents from 45 bytes to 15 KB."""
    return 2 * sys.getsizeof(doc) + 160 * len(parsed["metadata"]) + 768


def instance_footprint(inst: Instance) -> int:
    """About the bytes an instance held in memory takes at most (an event's, or the memory store's): its
    strings as Python holds them (so text outside ASCII is charged what it takes), a slot for each metadata
    entry and a fixed allowance for the objects."""
    texts = (inst.id, inst.name, inst.host, inst.health_endpoint, inst.version, inst.description,
             inst.health.output)
    return (sum(map(sys.getsizeof, texts)) + 256
            + sum(sys.getsizeof(k) + sys.getsizeof(v) + 64 for k, v in inst.metadata.items()))


class DocumentDecoder:
    """Decodes stored documents, each distinct one once while it stays in the cache (least recently used
    first out, past :data:`CACHE_BYTES` as :func:`footprint` charges them). Callers must not mutate what it
    returns."""

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self.cache_bytes = cache_bytes
        self.undecodable = 0
        """Instances and events skipped for an undecodable document, counted at each skip."""
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._bytes = 0
        self._logged: set[str] = set()

    def __repr__(self) -> str:
        return f"DocumentDecoder(documents={len(self._cache)}, bytes={self._bytes})"

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def decode(self, doc: str) -> dict[str, Any]:
        """The parsed document; :class:`UndecodableDocumentError` when it cannot be."""
        parsed = self._cache.get(doc)
        if parsed is not None:
            self._cache.move_to_end(doc)
            return parsed
        parsed = _decode(doc)
        size = footprint(doc, parsed)
        if size <= self.cache_bytes:
            self._cache[doc] = parsed
            self._bytes += size
            while self._bytes > self.cache_bytes:
                self._bytes -= footprint(*self._cache.popitem(last=False))
        return parsed

    def skipped(self, what: str, error: UndecodableDocumentError) -> None:
        """Count one skip of ``what`` (an instance or event id); log it the first time."""
        self.undecodable += 1
        if what in self._logged or len(self._logged) >= _LOGGED_LIMIT:
            return
        self._logged.add(what)
        log.error("skipping %s: its stored document cannot be decoded (%s); re-register it or delete its key",
                  what, error)
