"""Log formats: one JSON object per line with time (ISO 8601, UTC), level, logger, message and
exception text; readable text otherwise; a secret's value masked in either, exceptions too."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import pytest

from agentplex.config import load_settings
from agentplex.logs import JsonFormatter, TextFormatter, secret_values

SECRET = "x9Kq2LmZ7vTt4RwB8nYp3HsD6fGj1cVa"


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("agentplex.hub", logging.WARNING, __file__, 1, message, args, exc_info)


def failure(text: str) -> BaseException:
    try:
        raise RuntimeError(text)
    except RuntimeError:
        return sys.exc_info()[1]  # type: ignore[return-value]


def test_json_lines_carry_time_level_logger_message_and_exception() -> None:
    line = JsonFormatter().format(record("node %s left", "n1", exc=failure("boom")))
    assert "\n" not in line
    fields = json.loads(line)
    assert set(fields) == {"time", "level", "logger", "message", "exception"}
    assert (fields["level"], fields["logger"], fields["message"]) == (
        "WARNING",
        "agentplex.hub",
        "node n1 left",
    )
    assert fields["time"].endswith("Z")
    assert datetime.fromisoformat(fields["time"].replace("Z", "+00:00")).tzinfo == UTC
    assert "RuntimeError: boom" in fields["exception"]


def test_json_lines_without_an_exception_have_no_exception_field() -> None:
    assert "exception" not in json.loads(JsonFormatter().format(record("plain")))


def test_text_is_readable() -> None:
    line = TextFormatter().format(record("node %s left", "n1"))
    assert line.endswith(" WARNING agentplex.hub: node n1 left")


def test_secrets_are_masked_in_messages_and_exceptions() -> None:
    leaky = record("token signed with %s", SECRET, exc=failure(f"bad key {SECRET}"))
    for formatter in (JsonFormatter([SECRET]), TextFormatter([SECRET])):
        text = formatter.format(leaky)
        assert SECRET not in text
        assert "***" in text


def test_secret_values_are_the_settings_named_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLEX_AUTH__JWT_SECRET", SECRET)
    assert secret_values(load_settings("development")) == [SECRET]


@pytest.mark.parametrize(
    "message",
    [
        "> GET /v1/connect?token=eyJhbGciOi.eyJzdWIi.c2ln HTTP/1.1",
        "> GET /v1/connect?x=1&token=eyJhbGciOi.eyJzdWIi.c2ln HTTP/1.1",
        "> Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln",
    ],
)
def test_client_tokens_are_masked(message: str) -> None:
    record = logging.LogRecord("websockets.server", logging.DEBUG, "", 0, message, None, None)
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "eyJhbGciOi" not in line and "***" in line
