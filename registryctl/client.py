"""A small synchronous client of the registry's REST API on the standard library (``urllib``).

A command does one or a few requests, so a blocking client without a session is all it needs; the
runtime dependencies stay those of the registry.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registryctl.errors import RegistryApiError, RegistryUnreachableError


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: Any
    """Parsed JSON, or ``None`` for an empty body."""


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the origin it was sent to: urllib would carry the bearer token to
    wherever a ``Location`` points. A redirect elsewhere ends the request as its 3xx answer."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_SameOriginRedirects)


@dataclass(frozen=True)
class RegistryClient:
    urls: tuple[str, ...]
    """Registry base URLs, tried in order while none answers (replicas behind the same store)."""
    token: str | None = None
    """Bearer token: the write, read or admin token."""
    timeout_s: float = 10.0
    """Seconds to connect and to wait for an answer (a blocking query adds its wait to it)."""
    _opener: urllib.request.OpenerDirector = field(default_factory=_opener, repr=False)

    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, timeout_s: float | None = None) -> Answer:
        """Send one request; an error status raises :class:`RegistryApiError`."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        suffix = path + ("?" + urllib.parse.urlencode(query) if query else "")
        failures: list[str] = []
        for base in self.urls:
            req = urllib.request.Request(base.rstrip("/") + suffix, data=data, headers=sent, method=method)
            try:
                with self._opener.open(req, timeout=timeout_s or self.timeout_s) as resp:
                    return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, _json(resp.read()))
            except urllib.error.HTTPError as exc:
                if 300 <= exc.code < 400:
                    raise RegistryApiError(exc.code, "redirect_not_followed", (
                        f"{base} answered {exc.code} to {exc.headers.get('Location')!r}: a redirect to another "
                        "origin is not followed, so that credentials stay with the registry")) from None
                raise _api_error(exc.code, exc.read()) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                failures.append(f"{base} ({reason})")
        raise RegistryUnreachableError(f"registry unreachable: {'; '.join(failures)}")


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _api_error(status: int, raw: bytes) -> RegistryApiError:
    payload = _json(raw)
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        details = error.get("details")
        if isinstance(details, list) and details:
            message += " (" + "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details
                                        if isinstance(d, dict)) + ")"
        return RegistryApiError(status, str(error.get("code", "error")), message)
    return RegistryApiError(status, "http_error", raw[:200].decode(errors="replace").strip() or "no body")
