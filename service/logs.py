"""The hub's log on standard error: readable text, or one JSON object per line (`logging.format
= "json"`, production's default) for collectors. Either way the values of secret settings are
replaced by `***` in whatever is written, exception text included, so a secret that reaches a
message by accident still never reaches the log; so are clients' bearer tokens."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from agentplex.config import SECRETS, LoggingSettings, Settings

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# Clients' credentials a library may log (websockets logs the handshake at DEBUG): a bearer
# token in a header, or the `token` query parameter of a WebSocket URL.
_CREDENTIALS = re.compile(r"((?:[Bb]earer\s+)|(?:[?&]token=))[^\s&'\"]+")


def utc_time(created: float) -> str:
    """A log record's time as ISO 8601 UTC with milliseconds: 2026-11-26T21:50:00.123Z."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = (), fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return _CREDENTIALS.sub(lambda m: m.group(1) + MASK, text)


class TextFormatter(_Redacting):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(secrets, TEXT)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(_Redacting):
    """time (ISO 8601, UTC), level, logger, message, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        if record.exc_info:
            line["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


def configure(settings: LoggingSettings, secrets: Iterable[str] = ()) -> None:
    """Send every log record at `logging.level` or above to standard error in
    `logging.format`, masking `secrets`. Replaces whatever handlers the root logger had; loggers
    with handlers of their own (the audit log) keep them."""
    formatter = JsonFormatter(secrets) if settings.format == "json" else TextFormatter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.level.upper())


def secret_values(settings: Settings) -> list[str]:
    """The values of the settings named in `config.SECRETS`."""
    values = []
    for name in SECRETS:
        section, key = name.split(".")
        values.append(str(getattr(getattr(settings, section), key)))
    return values
