"""The registry's log lines: time, level and logger on every line, as text or as one JSON object per line.

``create_app`` calls :func:`configure_logging`, so the format holds under any ASGI server (hypercorn,
uvicorn, gunicorn's workers), not only under ``registry-server``. A process that configured logging itself
(handlers on the root logger) keeps its own format and levels.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "registry_server"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and
    ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: int, log_format: LogFormat, *, logger: str = "registry_server",
                      stream: TextIO | None = None) -> None:
    """Give ``logger`` (the root logger: ``""``) one stderr handler in ``log_format`` at ``level``, in place
    of the one a previous call gave it. For a named logger, only when the root logger has no handler: the
    process's own logging configuration wins."""
    if logger and logging.getLogger().handlers:
        return
    target = logging.getLogger(logger)
    target.setLevel(level)
    for handler in [h for h in target.handlers if h.get_name() == _HANDLER_NAME]:
        target.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(log_format))
    target.addHandler(handler)
