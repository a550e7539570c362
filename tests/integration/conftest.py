"""Fixtures of the Redis edge tests: the session's private redis-server, and a key prefix of
the test's own on it (so tests sharing the server never hear each other)."""

from __future__ import annotations

import pytest

from tests.support.redis_edge import unique_prefix
from tests.support.redis_server import RedisServer


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture
def prefix() -> str:
    return unique_prefix()
