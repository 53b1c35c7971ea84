"""registryctl never carries its bearer token to another origin: a redirect there is refused with one
line, while a redirect within the registry's own origin is followed."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registryctl import main

TOKEN = "admin-token-that-must-stay-home"


class Origin:
    """A small HTTP server: ``/moved/<path>`` answers 307 to ``<redirect_to>/<path>`` (its own origin by
    default); any other GET answers an empty service list and records (path, Authorization)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to = ""
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/moved/"):
                    self.send_response(307)
                    self.send_header("Location", (origin.redirect_to or origin.url) + self.path[len("/moved"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                origin.seen.append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"services": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def origins() -> Iterator[tuple[Origin, Origin]]:
    home, elsewhere = Origin(), Origin()
    try:
        yield home, elsewhere
    finally:
        home.server.shutdown()
        elsewhere.server.shutdown()


def _ctl(url: str, *args: str) -> tuple[int, str]:
    err = io.StringIO()
    code = main(["--url", url, "--token", TOKEN, *args], env={}, out=io.StringIO(), err=err)
    return code, err.getvalue()


def test_a_redirect_to_another_origin_is_refused_and_the_token_stays_home(origins: tuple[Origin, Origin]) -> None:
    home, elsewhere = origins
    home.redirect_to = elsewhere.url
    code, err = _ctl(home.url + "/moved", "ls")
    assert code != 0
    assert elsewhere.seen == []
    assert len(err.splitlines()) == 1 and "307" in err and "not followed" in err, err


def test_a_redirect_within_the_registry_origin_is_followed_with_the_token(origins: tuple[Origin, Origin]) -> None:
    home, _ = origins
    code, err = _ctl(home.url + "/moved", "ls")
    assert code == 0, err
    assert home.seen == [("/services", f"Bearer {TOKEN}")]
