"""The effective settings as plain data for `agentplex config show`: secrets redacted,
passwords in Redis URLs masked."""

from __future__ import annotations

import dataclasses
from typing import Any

from agentplex.config.sections import SECRETS, Settings
from agentplex.redisconn import redacted

REDACTED = "***"


def effective(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"env": settings.env}
    for f in dataclasses.fields(settings):
        if f.name == "env":
            continue
        section = dataclasses.asdict(getattr(settings, f.name))
        if f.name == "agents":
            section.update(section.pop("kinds"))
        for key, value in section.items():
            if f"{f.name}.{key}" in SECRETS and value:
                section[key] = REDACTED
            elif isinstance(value, str) and value.startswith(("redis://", "rediss://")):
                section[key] = redacted(value)
        out[f.name] = section
    return out
