"""The registry's log format: text or JSON lines with time, level and logger, under any ASGI server."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry_server.errors import ConfigError
from registry_server.logs import JsonFormatter, LogFormat, configure_logging, formatter
from registry_server.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def _record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    info = None
    if exc_info:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    record = logging.LogRecord("registry_server.sweeper", logging.WARNING, __file__, 1, message, args, info)
    record.created, record.msecs = 0.25, 250.0
    return record


def test_a_json_line_holds_time_level_logger_and_message() -> None:
    line = json.loads(JsonFormatter().format(_record("swept %d leases", 3)))
    assert line == {"time": "1970-01-01T00:00:00.250+00:00", "level": "WARNING",
                    "logger": "registry_server.sweeper", "message": "swept 3 leases"}


def test_a_json_line_carries_the_exception_and_stays_one_line() -> None:
    text = JsonFormatter().format(_record("failed", exc_info=True))
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_the_text_format_has_time_level_and_logger() -> None:
    text = formatter(LogFormat.TEXT).format(_record("swept"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,250 WARNING registry_server.sweeper: swept", text), text


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, LogFormat.TEXT),
    ([], {"REGISTRY_LOG_FORMAT": "json"}, LogFormat.JSON),
    (["--log-format", "text"], {"REGISTRY_LOG_FORMAT": "json"}, LogFormat.TEXT),
])
def test_the_log_format_setting_flag_wins_over_env(argv: list[str], env: dict[str, str], expected: LogFormat) -> None:
    assert load_settings(argv, env).log_format is expected


def test_a_bad_log_format_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="REGISTRY_LOG_FORMAT/--log-format: 'xml'"):
        load_settings([], {"REGISTRY_LOG_FORMAT": "xml"})


_SERVE_WITHOUT_CLI = """
import logging
from registry_server.app import create_app
from registry_server.settings import load_settings
import os
create_app(load_settings([], os.environ))  # as an ASGI server imports the app: nothing configured logging
logging.getLogger("registry_server.sweeper").warning("swept %d leases", 3)
logging.getLogger("registry_server").debug("not shown at info")
"""


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_app_configures_its_log_lines_without_the_cli(log_format: str) -> None:
    result = subprocess.run([sys.executable, "-c", _SERVE_WITHOUT_CLI], capture_output=True, text=True, timeout=60,
                            cwd=REPO, env={"PATH": "/usr/bin:/bin", "REGISTRY_LOG_FORMAT": log_format}, check=True)
    lines = [line for line in result.stderr.splitlines() if "swept" in line or "not shown" in line]
    assert len(lines) == 1, result.stderr
    if log_format == "json":
        line = json.loads(lines[0])
        assert (line["level"], line["logger"], line["message"]) == ("WARNING", "registry_server.sweeper",
                                                                    "swept 3 leases")
    else:
        assert lines[0].endswith(" WARNING registry_server.sweeper: swept 3 leases")


def test_a_configured_process_keeps_its_own_handlers() -> None:
    # Under pytest the root logger has handlers: create_app must leave the registry's loggers alone.
    stream = io.StringIO()
    before = list(logging.getLogger("registry_server").handlers)
    configure_logging(logging.DEBUG, LogFormat.JSON, stream=stream)
    assert logging.getLogger().handlers
    assert logging.getLogger("registry_server").handlers == before
