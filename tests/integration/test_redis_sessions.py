"""The session protocol over Redis (`session:<id>:in|out`), for agents that speak only Redis:
the same Session as SessionService.Connect, with JSON frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import redis.asyncio as aioredis

from agentplex.client import Client, HubError
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2, session_service_pb2 as ss
from tests.support.redis_edge import RedisAgent, edge_hub, unique_prefix, until
from tests.support.redis_server import RedisServer, find_redis_server, redis_server
from tests.support.streams import take

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server found")

CARD = {"id": "redis-agent", "capabilities": ["redis"]}


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as running:
        yield running


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def node(server: RedisServer, prefix: str) -> AsyncIterator[HubNode]:
    async with edge_hub(server.url, prefix) as running:
        yield running


@pytest.fixture
async def agent(node: HubNode, server: RedisServer, prefix: str) -> AsyncIterator[RedisAgent]:
    async with (
        aioredis.Redis(host=server.host, port=server.port) as redis,
        RedisAgent(redis, prefix, "s1") as connected,
    ):
        yield connected


async def test_agent_session_over_redis(client: Client, agent: RedisAgent) -> None:
    await agent.send("h", hello={"card": CARD})
    welcome = await agent.read_kind("welcome")
    assert welcome.ref == "h" and welcome.welcome.agent_id == "redis-agent"
    assert welcome.welcome.resume_token and welcome.welcome.heartbeat_interval_ms == 200
    beating = agent.keep_alive()
    registered = await client.get_agent("redis-agent")
    assert registered.transport == agent_pb2.TRANSPORT_REDIS

    # Subscribe, and receive what a gRPC client publishes.
    await agent.send("s", subscribe={"channels": ["news.*"]})
    receipt = await agent.answer("s")
    assert receipt.receipt.subscriptions[0].channel == "news.*"
    await client.publish("news.today", "extra")
    delivered = (await agent.read_kind("deliveries")).deliveries.deliveries[0]
    assert (delivered.envelope.payload, delivered.attempt) == (b"extra", 1)

    # Publish, and a gRPC subscriber receives it.
    subscription = client.subscribe("from.redis")
    got = asyncio.create_task(take(subscription, 1))
    await asyncio.wait_for(subscription.ready.wait(), 5)
    await agent.send("p", publish={"envelopes": [{"channel": "from.redis", "payload": "aGk="}]})
    published = await agent.answer("p")
    assert published.receipt.published[0].position.seq == 1
    (envelope,) = await got
    assert (envelope.payload, envelope.sender) == (b"hi", "redis-agent")

    # A direct message in the inbox, delivered with acks required, and acknowledged.
    await client.publish("agent.redis-agent", "psst")
    direct = (await agent.read_kind("deliveries")).deliveries.deliveries[0].envelope
    assert direct.payload == b"psst"
    position = {"seq": str(direct.position.seq), "epoch": direct.position.epoch}
    await agent.send("k", ack={"positions": [{"channel": direct.channel, "position": position}]})
    assert (await agent.answer("k")).WhichOneof("frame") == "receipt"

    # A task: assigned over Redis, accepted and completed over Redis.
    handle = await client.submit("shout this", require=["redis"])
    assignment = (await agent.read_kind("task_assignment")).task_assignment
    assert assignment.task.id == handle.id and assignment.task.input.data == b"shout this"
    task = {"taskId": handle.id, "attempt": assignment.attempt}
    await agent.send("a", task_update={**task, "accept": {}})
    await agent.send("r", task_update={**task, "result": {"data": "U0hPVVQgVEhJUw=="}})
    assert (await handle.result()).data == b"SHOUT THIS"

    beating.cancel()
    await agent.send("bye", goodbye={"reason": "done"})
    assert (await agent.answer("bye")).WhichOneof("frame") == "receipt"
    with pytest.raises(HubError) as gone:
        await until_gone(client)
    assert gone.value.code == grpc.StatusCode.NOT_FOUND


async def until_gone(client: Client) -> None:
    """Raises NOT_FOUND once the agent has left (it leaves right after its goodbye)."""
    for _ in range(500):
        await client.get_agent("redis-agent")
        await asyncio.sleep(0.01)


async def test_refusals_are_error_frames_echoing_ref(agent: RedisAgent) -> None:
    await agent.send("h", hello={})
    assert (await agent.read_kind("welcome")).welcome.agent_id == ""
    await agent.send("bad", subscribe={"channels": ["no spaces"]})
    error = (await agent.answer("bad")).error
    assert error.code == ss.ERROR_CODE_INVALID_ARGUMENT and "channels[0]" in error.message
    assert not error.fatal
    await agent.send_raw('{"ref": "junk", "helo": {}}')
    junk = await agent.answer("junk")
    assert "helo" in junk.error.message and not junk.error.fatal
    await agent.send("still", heartbeat={})
    assert (await agent.answer("still")).WhichOneof("frame") == "receipt"


async def test_publishes_outside_the_ingress_allow_list_are_refused_alone_or_batched(
    server: RedisServer, prefix: str
) -> None:
    async with (
        edge_hub(server.url, prefix, ingress="chat") as node,
        Client(node.grpc_address) as client,
        aioredis.Redis(host=server.host, port=server.port) as redis,
        RedisAgent(redis, prefix, "s2") as agent,
    ):
        await agent.send("h", hello={"batches": True})
        await agent.read_kind("welcome")
        secret = {"envelopes": [{"channel": "secret", "payload": "eA=="}]}
        chat = {"envelopes": [{"channel": "chat", "payload": "eQ=="}]}
        await agent.send("alone", publish=secret)
        await agent.send(
            "b",
            batch={
                "frames": [{"ref": "in-batch", "publish": secret}, {"ref": "ok", "publish": chat}]
            },
        )
        for ref in ("alone", "in-batch"):
            error = (await agent.answer(ref)).error
            assert error.code == ss.ERROR_CODE_PERMISSION_DENIED and not error.fatal
            assert "'secret' is not allowed by redis_edge.ingress (chat)" in error.message
        assert (await agent.answer("ok")).receipt.published[0].position.seq == 1
        assert (await client.history("secret")).envelopes == []
        assert [e.payload for e in (await client.history("chat")).envelopes] == [b"y"]


async def test_first_frame_must_be_hello(agent: RedisAgent) -> None:
    await agent.send("x", heartbeat={})
    frame = await agent.read()
    assert frame.ref == "x" and frame.error.fatal
    assert "first frame of a session must be hello" in frame.error.message
    await agent.send("h", hello={})  # a later frame starts a new connection
    assert (await agent.read_kind("welcome")).ref == "h"


async def test_silent_session_times_out_and_resumes(client: Client, agent: RedisAgent) -> None:
    await agent.send("h", hello={"card": CARD})
    token = (await agent.read_kind("welcome")).welcome.resume_token
    closed = (await agent.read_kind("error")).error  # no heartbeat: pings, then the end
    assert closed.fatal and "session.heartbeat_timeout" in closed.message
    assert closed.code == ss.ERROR_CODE_UNAVAILABLE
    await until_status(client, agent_pb2.AGENT_STATUS_OFFLINE)
    await agent.send("again", hello={"resumeToken": token})
    welcome = (await agent.read_kind("welcome")).welcome
    assert welcome.resumed and welcome.agent_id == "redis-agent"
    await until_status(client, agent_pb2.AGENT_STATUS_ONLINE)


async def until_status(client: Client, status: int) -> None:
    for _ in range(500):
        if (await client.get_agent("redis-agent")).status == status:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"agent never reached status {status}")


async def test_sessions_end_when_the_node_stops_leading(node: HubNode, agent: RedisAgent) -> None:
    await agent.send("h", hello={})
    await agent.read_kind("welcome")
    edge = node.redis_edge
    assert edge is not None and len(edge.sessions) == 1
    await edge.leader.release()
    closed = (await agent.read_kind("error")).error
    assert closed.fatal and "no longer holds the Redis edge lock" in closed.message
    await until(lambda: len(edge.sessions) == 0)
