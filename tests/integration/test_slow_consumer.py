"""A consumer that cannot keep up is disconnected with a clear reason; the others go on."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from agentplex.client import Client, envelope
from agentplex.config import Settings
from agentplex.node import HubNode
from agentplex.v1 import session_service_pb2 as ss
from tests.conftest import ENGINES, engine_settings
from tests.integration.test_sessions import Raw


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest) -> Settings:
    return engine_settings(request, limits={"session_queue": 300, "max_batch": 100})


async def test_slow_consumer_is_cut_off_while_others_go_on(client: Client, node: HubNode) -> None:
    raw = Raw(client)
    await raw.send(hello=ss.Hello())
    await raw.read_kind("welcome")
    await raw.send(ref="s", subscribe=ss.Subscribe(channels=["flood"]))
    await raw.read_kind("receipt")
    healthy = client.subscribe("flood")
    seen = 0

    async def follow() -> None:
        nonlocal seen
        async for _ in healthy:
            seen += 1
            if seen == 3000:
                return

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(healthy.ready.wait(), 5)
    payload = b"x" * 4096
    for _ in range(30):  # the raw session reads nothing: its queue fills and it is cut off
        await client.publish_batch([envelope("flood", payload) for _ in range(100)])
    await asyncio.wait_for(follower, 10)
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        while True:
            await raw.read(timeout=5)
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limits.session_queue" in (cut.value.details() or "")
    assert node.hub.metrics.slow_consumers >= 1
    assert (await client.publish("flood", "still up")).position.seq == 3001
