"""Fixtures shared by every suite: a real hub node on loopback and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentplex.client import Client
from agentplex.config import Settings
from agentplex.node import HubNode
from tests.support.hubs import fast_settings


@pytest.fixture
def settings() -> Settings:
    return fast_settings()


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
