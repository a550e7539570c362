"""Redis connections from the settings: standalone or Cluster, `redis://` or `rediss://` (TLS,
optionally with a client certificate), with timeouts so a stalled Redis fails fast instead of
hanging the hub."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agentplex.config import EngineSettings

Client = aioredis.Redis | RedisCluster


def _options(settings: EngineSettings, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        # A command that timed out may have run: the engine's writes are not blindly retried
        # (publishes are retried by their envelope id, which makes them idempotent).
        "retry_on_timeout": False,
    }
    if url.startswith("rediss://"):
        options["ssl_ca_certs"] = settings.redis_tls_ca_file or None
        options["ssl_certfile"] = settings.redis_tls_cert_file or None
        options["ssl_keyfile"] = settings.redis_tls_key_file or None
    return options


def connect(settings: EngineSettings, url: str = "") -> Client:
    """A client for commands: a cluster client when `engine.redis_cluster` is set."""
    url = url or settings.redis_url
    if settings.redis_cluster:
        return RedisCluster.from_url(url, **_options(settings, url))
    return aioredis.Redis.from_url(url, **_options(settings, url))


def connect_pubsub(settings: EngineSettings, url: str = "") -> aioredis.Redis:
    """A plain client for pub/sub, on the node the URL names: in a Cluster, PUBLISH reaches
    every node, so subscribing on one is enough. Reads wait as long as they need to."""
    url = url or settings.redis_url
    options = _options(settings, url)
    options["socket_timeout"] = None
    return aioredis.Redis.from_url(url, **options)


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
