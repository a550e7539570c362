"""Which web pages may use the WebSocket port: the request's `Origin` header against
`server.allowed_origins`. A browser sends the page's origin with every WebSocket upgrade and
carries the user's cookies and network position along, so without this check any site the
user visits could open sessions on a hub it can reach (cross-site WebSocket hijacking).

Pure: the setting is parsed once at start, and each request is one lookup. No Origin header
means no browser, so the request passes; a page the hub served itself (same scheme, host and
port as the request's Host) always passes; "*" lets any page in."""

from __future__ import annotations

import re
from dataclasses import dataclass

SETTING = "server.allowed_origins"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
_ORIGIN = re.compile(rf"(?P<scheme>[a-z][a-z0-9+.-]*)://{_HOST}", re.IGNORECASE)
_HOST_HEADER = re.compile(_HOST, re.IGNORECASE)

# scheme, host, port (None: no port given and none known for the scheme), all normalised.
Origin = tuple[str, str, int | None]


def _normal(scheme: str, match: re.Match[str]) -> Origin:
    port = match["port"]
    return scheme, match["host"].lower(), int(port) if port else _DEFAULT_PORTS.get(scheme)


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]`, normalised; None for anything else ("null", a path, a list)."""
    match = _ORIGIN.fullmatch(text.strip())
    return _normal(match["scheme"].lower(), match) if match else None


@dataclass(frozen=True, slots=True)
class Origins:
    """`server.allowed_origins`, parsed. `scheme` is what the hub's own pages are served
    over: https when TLS is on for the WebSocket port, else http."""

    scheme: str
    listed: frozenset[Origin] = frozenset()
    any: bool = False

    @classmethod
    def parse(cls, setting: str, *, tls: bool) -> Origins:
        """Raises ValueError naming the setting for an entry that is not an origin (settings
        validation turns it into a ConfigError at load)."""
        entries = [entry.strip() for entry in setting.split(",") if entry.strip()]
        listed = set()
        for entry in entries:
            if entry == "*":
                continue
            origin = parse_origin(entry)
            if origin is None:
                raise ValueError(
                    f"setting {SETTING}: {entry!r} is not an origin; write scheme://host[:port] "
                    "(no path), or * for any"
                )
            listed.add(origin)
        return cls("https" if tls else "http", frozenset(listed), "*" in entries)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """Whether a request with these Origin and Host headers (None: absent) may go on."""
        if origin is None or self.any:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        return parsed in self.listed or parsed == self._own(host)

    def _own(self, host: str | None) -> Origin | None:
        """The origin of the hub's own pages, as the request's Host header names it."""
        match = _HOST_HEADER.fullmatch(host.strip()) if host else None
        return _normal(self.scheme, match) if match else None


def refusal(origin: str) -> str:
    """The one-line reason a refused request gets."""
    return f"origin {origin} is not allowed: add it to {SETTING}"
