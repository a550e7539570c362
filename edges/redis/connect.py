"""The edge's Redis client, from settings, and the backoff between reconnect attempts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from agentplex.config import Settings


def edge_url(settings: Settings) -> str:
    """`redis_edge.url`, or `engine.redis_url` when that is empty."""
    return settings.redis_edge.url or settings.engine.redis_url


def redacted(url: str) -> str:
    """`url` without its password, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def client(settings: Settings) -> aioredis.Redis:
    """A pooled client; a `rediss://` URL uses the `engine.redis_tls_*` files."""
    url = edge_url(settings)
    options: dict[str, Any] = {}
    if url.startswith("rediss://"):
        engine = settings.engine
        options = {
            "ssl_ca_certs": engine.redis_tls_ca_file or None,
            "ssl_certfile": engine.redis_tls_cert_file or None,
            "ssl_keyfile": engine.redis_tls_key_file or None,
        }
    return aioredis.Redis.from_url(url, **options)


@dataclass(slots=True)
class Backoff:
    """Doubling delays between attempts, capped; `reset` after a success."""

    initial: float = 0.05
    maximum: float = 2.0
    _next: float = 0.0

    def delay(self) -> float:
        self._next = min(self.maximum, self._next * 2) if self._next else self.initial
        return self._next

    def reset(self) -> None:
        self._next = 0.0
