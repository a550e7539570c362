"""The audit log: one JSON line per security-relevant event (authentication failures,
registrations and departures, permission denials, cancels, handoffs, admin actions), with the
principal, transport, peer address and time.

Events go through the `agentplex.audit` logger, so any module records one with `record(...)`
and no I/O of its own; `configure` points that logger at a file or standard output.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from agentplex.config import AuditSettings
from agentplex.core.principal import Principal
from agentplex.logs import utc_time

_log = logging.getLogger("agentplex.audit")


def record(event: str, principal: Principal | None = None, **details: Any) -> None:
    """Audit `event` by `principal` (None: before anyone was authenticated)."""
    if not _log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {"event": event}
    if principal is not None:
        fields.update(principal=principal.id, transport=principal.transport, peer=principal.peer)
    fields.update(details)
    _log.info("%s", event, extra={"audit": fields})


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "audit", None) or {"event": record.getMessage()}
        return json.dumps({"time": utc_time(record.created), **fields}, default=str)


def configure(settings: AuditSettings) -> None:
    """Send audit events to `audit.file` ("-": standard output) as JSON lines, apart from
    the ordinary log; or nowhere when `audit.enabled` is false."""
    for old in list(_log.handlers):
        _log.removeHandler(old)
        old.close()
    _log.propagate = False
    if not settings.enabled:
        _log.setLevel(logging.CRITICAL + 1)
        return
    handler: logging.Handler
    if settings.file == "-":
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.FileHandler(settings.file, encoding="utf-8")
    handler.setFormatter(JsonLines())
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
