"""A started `RedisEngine` on a private redis-server, for tests that drive the engine itself."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from agentplex.config import EngineSettings
from agentplex.core.channel_log import Retention
from agentplex.engine.base import PublicationHandler
from agentplex.engine.redis import RedisEngine
from tests.support.redis_server import RedisServer


@contextlib.asynccontextmanager
async def started_engine(
    server: RedisServer,
    prefix: str,
    retention: Retention | None = None,
    on_publications: PublicationHandler = lambda entries: None,
    **settings: Any,
) -> AsyncIterator[RedisEngine]:
    """A RedisEngine on `server` under `prefix` (EngineSettings `settings` on top), started,
    handing what its fan-out hears to `on_publications`."""
    engine = RedisEngine(
        retention or Retention(),
        EngineSettings(name="redis", redis_url=server.url, redis_prefix=prefix, **settings),
    )
    await engine.start(on_publications, node="n1")
    try:
        yield engine
    finally:
        await engine.close()
