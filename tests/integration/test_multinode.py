"""Two hub nodes on one Redis (a server, or a Cluster) act as one hub: messages published on one
reach subscribers on the other in the same order with the same positions; a task submitted on
one is done by an agent on the other; cancel and input cross too; an agent id is held once
across nodes."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator

import grpc
import pytest

from agentplex.client import Client, HubError, TaskContext, TaskFailed, envelope
from agentplex.config import Settings
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2, task_pb2
from tests.support.hubs import fast_settings
from tests.support.redis_server import RedisServer
from tests.support.streams import take, until

_prefixes = itertools.count()


def shared(url: str, cluster: bool, prefix: str, node_id: str) -> Settings:
    engine = {
        "name": "redis",
        "redis_url": url,
        "redis_cluster": cluster,
        "redis_prefix": prefix,
        "node_ttl": 1.0,
    }
    return fast_settings(engine=engine, server={"node_id": node_id})


@pytest.fixture(params=["redis", "redis-cluster"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Client, Client]]:
    """Two nodes on the session's redis-server, or on its Redis Cluster, where each node is
    given a different master: their pub/sub connections then sit on different masters, so
    every publication crosses the cluster bus."""
    if request.param == "redis-cluster":
        masters = request.getfixturevalue("private_redis_cluster").masters
        urls, cluster = (masters[0].url, masters[1].url), True
    else:
        url = request.getfixturevalue("private_redis").url
        urls, cluster = (url, url), False
    prefix = f"multi{next(_prefixes)}"
    async with (
        HubNode(shared(urls[0], cluster, prefix, "node-a")) as a,
        HubNode(shared(urls[1], cluster, prefix, "node-b")) as b,
        Client(a.grpc_address) as on_a,
        Client(b.grpc_address) as on_b,
    ):
        yield on_a, on_b


def card(agent_id: str, *caps: str) -> agent_pb2.AgentCard:
    return agent_pb2.AgentCard(id=agent_id, capabilities=caps)


async def test_a_subscriber_on_one_node_sees_what_another_accepted_in_order(
    pair: tuple[Client, Client],
) -> None:
    on_a, on_b = pair
    here, there = on_a.subscribe("room.*"), on_b.subscribe("room.*")
    reads = [asyncio.create_task(take(sub, 50)) for sub in (here, there)]
    for sub in (here, there):
        await asyncio.wait_for(sub.ready.wait(), 5)
    for i in range(20):  # both nodes publish, interleaved
        await (on_a if i % 2 else on_b).publish("room.1", f"m{i}")
    await on_a.publish_batch([envelope("room.1", f"batch{i}") for i in range(30)])
    seen_a, seen_b = await asyncio.gather(*reads)
    positions = [(e.position.seq, e.position.epoch, e.payload) for e in seen_a]
    assert positions == [(e.position.seq, e.position.epoch, e.payload) for e in seen_b]
    assert [seq for seq, _, _ in positions] == list(range(1, 51))
    assert len({epoch for _, epoch, _ in positions}) == 1
    page = await on_b.history("room.1", limit=100)
    assert [e.payload for e in page.envelopes] == [p for _, _, p in positions]


async def test_a_task_submitted_on_one_node_is_done_by_an_agent_on_the_other(
    pair: tuple[Client, Client],
) -> None:
    on_a, on_b = pair

    async def work(task: TaskContext) -> str:
        await task.progress("halfway", 50)
        return f"done by {task.session.agent_id}"

    async with on_a.session(card("far", "remote")) as agent:
        agent.on_task(work)
        handle = await on_b.submit("job", require=["remote"])
        assert (await handle.result()).data == b"done by far"
        task = await on_a.get_task(handle.id)
        assert (task.state, task.assigned_agent_id) == (task_pb2.TASK_STATE_COMPLETED, "far")
        agents = await on_b.agents()
        assert [(a.card.id, a.node) for a in agents] == [("far", "node-a")]


async def test_cancel_and_input_cross_nodes(pair: tuple[Client, Client]) -> None:
    on_a, on_b = pair
    canceled = asyncio.Event()

    async def ask_then_wait(task: TaskContext) -> str:
        answer = await task.ask("which branch?")
        if answer.data == b"wait":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                canceled.set()
                raise
        return f"reviewed {answer.data.decode()}"

    async with on_a.session(card("asker", "ask")) as agent:
        agent.on_task(ask_then_wait)
        for answer, expect_done in (("main", True), ("wait", False)):
            handle = await on_b.submit("review", require=["ask"])
            async for event in handle.events():
                if event.task.state == task_pb2.TASK_STATE_INPUT_REQUIRED:
                    await handle.provide_input(answer)  # on node B; the agent is on node A
                    break
            if expect_done:
                assert (await handle.result()).data == b"reviewed main"
                continue
            await until(functools.partial(is_working, on_b, handle.id))
            await handle.cancel("not needed")
            await asyncio.wait_for(canceled.wait(), 5)
            with pytest.raises(TaskFailed):
                await handle.result()
            await until(lambda: idle(on_b, "asker"))


async def is_working(client: Client, task_id: str) -> bool:
    return (await client.get_task(task_id)).state == task_pb2.TASK_STATE_WORKING


async def idle(client: Client, agent_id: str) -> bool:
    return (await client.get_agent(agent_id)).active_tasks == 0


async def test_an_agent_id_is_held_by_one_node_at_a_time(pair: tuple[Client, Client]) -> None:
    on_a, on_b = pair
    async with on_a.session(card("solo")):
        with pytest.raises(HubError) as taken:
            async with on_b.session(card("solo")):
                pass
        assert taken.value.code == grpc.StatusCode.ALREADY_EXISTS
        assert "node-a" in taken.value.message
    await until(lambda: gone(on_b, "solo"))
    async with on_b.session(card("solo")):  # free again once it left
        assert (await on_a.get_agent("solo")).node == "node-b"


async def has_failed(client: Client, task_id: str) -> bool:
    return (await client.get_task(task_id)).state == task_pb2.TASK_STATE_FAILED


async def gone(client: Client, agent_id: str) -> bool:
    return all(a.card.id != agent_id for a in await client.agents())


async def test_a_deadline_is_kept_by_the_nodes_that_remain(
    private_redis: RedisServer,
) -> None:
    def on(node_id: str) -> HubNode:
        return HubNode(shared(private_redis.url, False, prefix, node_id))

    prefix = f"multi{next(_prefixes)}"
    async with on("node-a") as a, Client(a.grpc_address) as on_a:
        async with on("node-b") as b, Client(b.grpc_address) as on_b:
            handle = await on_b.submit("never taken", require=["nobody-has-this"], deadline=1.0)
        # Node B, which accepted the task, is gone; node A fails it when its deadline passes.
        await until(functools.partial(has_failed, on_a, handle.id), timeout=10)
        done = await on_a.get_task(handle.id)
        assert done.error.code == "DEADLINE_EXCEEDED"


async def test_a_node_taken_for_dead_registers_its_agents_again(
    private_redis: RedisServer,
) -> None:
    """Node A stalls past its lease (simulated: its lease is set in the past); node B buries
    its agents. When A renews, it finds its lease gone and registers its live agents again, and
    they get work as before."""

    def on(node_id: str) -> HubNode:
        return HubNode(shared(private_redis.url, False, prefix, node_id))

    async def work(task: TaskContext) -> str:
        return "still here"

    prefix = f"multi{next(_prefixes)}"
    async with (
        on("node-a") as a,
        on("node-b") as b,
        Client(a.grpc_address) as on_a,
        Client(b.grpc_address) as on_b,
        on_a.session(card("phoenix", "rise")) as agent,
    ):
        agent.on_task(work)
        events = on_b.watch_agents(include_current=False)
        await a.hub.engine.beat("node-a", 0)  # as if node A had stopped renewing long ago
        left = await asyncio.wait_for(anext(events), 10)
        assert (left.type, left.agent.card.id) == (agent_pb2.AGENT_EVENT_TYPE_LEFT, "phoenix")
        back = await asyncio.wait_for(anext(events), 10)
        assert (back.type, back.agent.node) == (agent_pb2.AGENT_EVENT_TYPE_JOINED, "node-a")
        handle = await on_b.submit("again", require=["rise"])
        assert (await asyncio.wait_for(handle.result(), 10)).data == b"still here"


async def test_a_node_that_loses_its_pub_sub_connection_misses_nothing(
    private_redis: RedisServer,
) -> None:
    """Redis drops every pub/sub connection (CLIENT KILL TYPE pubsub) while node A keeps
    publishing: node B's subscriber still gets every message once, in order."""
    prefix = f"multi{next(_prefixes)}"
    async with (
        HubNode(shared(private_redis.url, False, prefix, "node-a")) as a,
        HubNode(shared(private_redis.url, False, prefix, "node-b")) as b,
        Client(a.grpc_address) as on_a,
        Client(b.grpc_address) as on_b,
    ):
        sub = on_b.subscribe("steady")
        reading = asyncio.create_task(take(sub, 200, timeout=30))
        await asyncio.wait_for(sub.ready.wait(), 5)
        for i in range(200):
            if i == 20:
                private_redis.client().client_kill_filter(_type="pubsub")
            await on_a.publish("steady", f"{i}")
        got = await reading
    assert [e.payload for e in got] == [str(i).encode() for i in range(200)]
    assert [e.position.seq for e in got] == list(range(1, 201))
