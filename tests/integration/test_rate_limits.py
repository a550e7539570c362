"""Rate limits per principal on every transport: publishes, submits and connections beyond
their bucket are refused with RESOURCE_EXHAUSTED and the time to retry; nothing refused is
accepted, nothing accepted is lost, and other principals go on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from websockets.asyncio.client import connect

from agentplex.client import Client, HubError, envelope
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2
from tests.support.auth import auth_settings, token
from tests.support.hubs import fast_settings
from tests.support.ws_sessions import answer

LIMITS = {
    "enabled": True,
    "publish_rate": 0.001,  # nothing comes back during a test: the burst is all there is
    "publish_burst": 5,
    "submit_rate": 0.001,
    "submit_burst": 2,
    "connect_rate": 0.001,
    "connect_burst": 3,
    "max_sessions": 2,
}


@pytest.fixture
async def node() -> AsyncIterator[HubNode]:
    settings = fast_settings(
        auth=auth_settings(),
        rate_limits=LIMITS,
        session={"heartbeat_interval": 1.0, "heartbeat_timeout": 30.0},
    )
    async with HubNode(settings) as running:
        yield running


async def exhausted(call: object) -> str:
    with pytest.raises(HubError) as err:
        await call  # type: ignore[misc]
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
    assert "retry after" in err.value.message or "exceeds the burst" in err.value.message
    return err.value.message


async def test_publishes_beyond_the_bucket_are_refused(node: HubNode) -> None:
    async with (
        Client(node.grpc_address, token=token("fast")) as fast,
        Client(node.grpc_address, token=token("calm")) as calm,
    ):
        await fast.publish_batch([envelope("chat", str(i)) for i in range(4)])
        await fast.publish("chat", "4")
        message = await exhausted(fast.publish("chat", "5"))
        assert "rate_limits.publish_rate" in message and "'fast'" in message
        await exhausted(fast.publish_batch([envelope("chat", "x")] * 6))  # beyond the burst
        assert (await calm.publish("chat", "calm")).position.seq == 6  # others go on
        history = await calm.history("chat")
        assert [e.payload for e in history.envelopes] == [b"0", b"1", b"2", b"3", b"4", b"calm"]


async def test_submits_beyond_the_bucket_are_refused(node: HubNode) -> None:
    async with Client(node.grpc_address, token=token("sub")) as client:
        for _ in range(2):
            await client.submit("x", require=["nobody"])
        assert "rate_limits.submit_rate" in await exhausted(client.submit("x", require=["nobody"]))
        assert len(await client.list_tasks()) == 2


async def test_connections_and_sessions_per_principal(node: HubNode) -> None:
    url = f"{node.ws_url}/v1/connect?token={token('many', 'agent subscribe:*')}"
    async with connect(url) as one, connect(url) as two, connect(url) as three:
        for ws in (one, two):
            await ws.send(json.dumps({"ref": "h", "hello": {}}))
            assert "welcome" in await answer(ws, "h")
        await three.send(json.dumps({"ref": "h", "hello": {}}))
        refused = await answer(three, "h")
        assert refused["error"]["code"] == "ERROR_CODE_RESOURCE_EXHAUSTED"
        assert "rate_limits.max_sessions" in refused["error"]["message"]
    async with Client(node.grpc_address, token=token("many", "agent")) as client:
        # The fourth connection of "many" is over its connect burst of 3.
        message = await exhausted(client.session(agent_pb2.AgentCard(id="many")).connect())
        assert "rate_limits.connect_rate" in message
    async with (
        Client(node.grpc_address, token=token("other", "agent")) as other,
        other.session(agent_pb2.AgentCard(id="other")) as session,
    ):
        assert session.agent_id == "other"
