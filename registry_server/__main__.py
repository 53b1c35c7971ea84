"""The ``registry-server`` console script and ``python -m registry_server``.

The plain install is the client; without the server's dependencies (the ``[server]`` extra) this says in
one line what to install, instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

SERVER_MODULES = frozenset({"starlette", "hypercorn", "redis", "pydantic", "pydantic_core", "sse_starlette",
                            "defusedxml"})
"""The top-level modules of the ``[server]`` extra's distributions."""

INSTALL_HINT = "pip install 'service-registry[server]'"


def main(argv: Sequence[str] | None = None) -> None:
    try:
        from registry_server.cli import main as serve
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        if module not in SERVER_MODULES:
            raise
        print(f"registry-server: error: the registry's dependencies are not installed (no module {module!r}); "
              f"install them with: {INSTALL_HINT}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(argv)


if __name__ == "__main__":
    main()
