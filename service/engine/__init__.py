"""Engines own shared state and fan-out: registry, channel history and positions, dedup.

`memory` is embedded and needs nothing; `redis` lets several hub nodes act as one.
Both implement `Engine` and pass the same contract suite (tests/contract).
"""

from __future__ import annotations

from agentplex.config import Settings
from agentplex.core.channel_log import Retention
from agentplex.engine.base import Engine
from agentplex.engine.memory import MemoryEngine


def retention_of(settings: Settings) -> Retention:
    ch = settings.channels
    return Retention(
        history_size=ch.history_size,
        history_ttl_ns=int(ch.history_ttl * 1e9),
        dedup_window_ns=int(ch.dedup_window * 1e9),
        dedup_size=ch.dedup_size,
    )


def create_engine(settings: Settings) -> Engine:
    if settings.engine.name == "redis":
        from agentplex.engine.redis import RedisEngine  # imports redis only when asked for

        return RedisEngine(retention_of(settings), settings.engine)
    return MemoryEngine(retention_of(settings))


__all__ = ["Engine", "MemoryEngine", "create_engine", "retention_of"]
