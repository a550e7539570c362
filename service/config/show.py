"""The effective settings as plain data for `agentplex config show`: secrets redacted,
passwords in Redis URLs masked."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from agentplex.config.sections import SECRETS, Settings

REDACTED = "***"
_REDIS_URLS = ("redis://", "rediss://", "unix://")
# redis-py reads a password from the query string too (unix:///run/redis.sock?password=...).
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """`url` with its passwords hidden. The user information runs to the last "@", so a
    password with an unencoded "/", "?", "#" or "@" is hidden whole (urlsplit would end it at
    the first of those and show the rest); a `password=` query argument is hidden as well."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{REDACTED}@{rest}" if colon else f"{REDACTED}@{rest}"
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + REDACTED, scheme + sep + rest)


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
            elif isinstance(value, str) and value.startswith(_REDIS_URLS):
                section[key] = masked_url(value)
        out[f.name] = section
    return out
