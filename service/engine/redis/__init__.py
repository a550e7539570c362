"""The Redis engine (see engine.py): several hub nodes sharing one Redis act as one hub."""

from agentplex.engine.redis.engine import RedisEngine

__all__ = ["RedisEngine"]
