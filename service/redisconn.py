"""Redis connections from the settings, for the Redis engine and the Redis edge alike:
standalone or Cluster, `redis://` or `rediss://` (TLS, optionally with a client certificate),
with timeouts so a stalled Redis fails fast instead of hanging the hub, and the backoff between
reconnect attempts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentplex.config.sections import EngineSettings

Client = aioredis.Redis | RedisCluster


def _options(settings: EngineSettings, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
    }
    if url.startswith("rediss://"):
        options["ssl_ca_certs"] = settings.redis_tls_ca_file or None
        options["ssl_certfile"] = settings.redis_tls_cert_file or None
        options["ssl_keyfile"] = settings.redis_tls_key_file or None
    return options


def _pooled(settings: EngineSettings, url: str, **options: Any) -> aioredis.Redis:
    """A client whose commands beyond `engine.redis_max_connections` at once wait for a free
    connection (up to `engine.redis_timeout`): redis-py's default pool fails them instead,
    which the hub would take for Redis being unreachable."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        **options,
    )
    return aioredis.Redis.from_pool(pool)


def connect(settings: EngineSettings, url: str = "") -> Client:
    """A client for commands: a cluster client when `engine.redis_cluster` is set."""
    url = url or settings.redis_url
    options = _options(settings, url)
    # A command that timed out may have run: the engine's writes are not blindly retried
    # (publishes are retried by their envelope id, which makes them idempotent). The cluster
    # client retries timeouts by default and takes a `Retry` instead of `retry_on_timeout`;
    # it still follows MOVED and ASK redirects, which are not retries.
    if settings.redis_cluster:
        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)
    return _pooled(settings, url, retry_on_timeout=False, **options)


def connect_pubsub(settings: EngineSettings, url: str = "") -> aioredis.Redis:
    """A plain client for pub/sub, on the node the URL names: in a Cluster, PUBLISH reaches
    every node, so subscribing on one is enough. Reads wait as long as they need to. The
    Redis edge uses it for its own URL (with the engine's TLS files)."""
    url = url or settings.redis_url
    options = _options(settings, url)
    options["socket_timeout"] = None
    return _pooled(settings, url, **options)


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
